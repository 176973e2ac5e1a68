"""How rows are made: factories, the column vocabulary, Brazilian identifiers."""
