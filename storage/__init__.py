"""Storage: SQLModel tables and enums, sessions, keyword-only queries, Alembic migrations. Imports nothing from bot/."""
