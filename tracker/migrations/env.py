"""Alembic environment: runs on the engine the tracker hands over, or on DATABASE_URL."""
from alembic import context
from sqlalchemy.engine import Engine

from tracker import models
from tracker.db import database_url, make_engine

target_metadata = models.metadata


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    return engine if engine is not None else make_engine(database_url("instance"))


def run() -> None:
    """Run the migrations online, in one transaction."""
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run()
