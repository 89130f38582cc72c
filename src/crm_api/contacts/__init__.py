"""Contacts: the people a workspace does business with."""
