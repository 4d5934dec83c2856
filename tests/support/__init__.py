"""Test support: a real PostgreSQL server, database templates and record factories."""
