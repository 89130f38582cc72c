"""Companies: the organisations contacts belong to (customers, partners, suppliers, prospects)."""
