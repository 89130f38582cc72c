"""What we hold on a person: all of it exported, or erased with the metrics kept true."""
