"""Users (the staff who own records) and teams."""
