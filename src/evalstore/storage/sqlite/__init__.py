"""The local store (`file:///dir`): evalstore's history in SQLite, one file per database."""
