"""One module per unlearning method; importing a module registers its method."""
