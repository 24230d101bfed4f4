"""The SQL files, shipped as package data of `longtail.sql` (see longtail.sqlfiles)."""
