"""Backups: policies, backup records, engines (PostgreSQL, SQLite, files), storage, verify, drills, restore."""
