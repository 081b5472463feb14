"""Storage: SQLAlchemy 2 async engine, the declarative base and Alembic migrations."""
