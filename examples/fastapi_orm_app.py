"""FastAPI with SQLAlchemy's ORM on aiopool: one AsyncSession per request.

The twin of fastapi_app.py: the `lifespan` handler opens the aiopool and builds
an `AsyncEngine` on it (`aiopool.sqlalchemy.create_async_engine`); a dependency
gives each request an `AsyncSession` for exactly one transaction (commit when
the endpoint returns, rollback when it raises).  The example's table gets a
name of its own per run and is dropped on shutdown: nothing is left behind.

    AIOPOOL_URL=mysql://root:@127.0.0.1:3306/test python examples/fastapi_orm_app.py --port 8000
    curl localhost:8000/items/7; curl -X POST localhost:8000/visits/home; curl localhost:8000/health
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from sqlalchemy import BigInteger, String, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aiopool import AsyncConnectionPool
from aiopool.sqlalchemy import create_async_engine

URL = os.environ.get("AIOPOOL_URL", "mysql://root:@127.0.0.1:3306/test")


class Base(DeclarativeBase):
    """The example's models."""


class Visit(Base):
    """How often a page was visited.  The table name is unique per process."""

    __tablename__ = f"aiopool_orm_visits_{uuid.uuid4().hex[:8]}"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    hits: Mapped[int] = mapped_column(BigInteger)


def sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    """The application's session factory, made by `lifespan`."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return factory


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request; its connection is an aiopool loan."""
    async with sessions(request)() as session, session.begin():  # commit, or rollback on error
        yield session


# scope="function": the transaction ends and the connection goes back to the
# pool before the response is sent, not after.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
SleepMs = Annotated[int, Query(ge=0, le=1000, description="server time of the query")]


def create_app(
    url: str = URL, *, min_size: int = 2, max_size: int = 10, timeout: float = 10.0
) -> FastAPI:
    """The application; nothing is opened until uvicorn runs its lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            url, min_size=min_size, max_size=max_size, timeout=timeout, name="fastapi-orm-example"
        )
        async with pool:  # opens min_size connections, closes the pool on shutdown
            engine = create_async_engine(pool)
            app.state.pool = pool
            app.state.sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
            try:
                yield
            finally:
                async with engine.begin() as conn:
                    await conn.run_sync(Base.metadata.drop_all)
                await engine.dispose()

    app = FastAPI(title="aiopool FastAPI ORM example", lifespan=lifespan)

    @app.get("/items/{n}")
    async def read_item(n: int, session: Session, ms: SleepMs = 5) -> dict[str, int]:
        """A small query that keeps the connection busy for `ms` milliseconds (default 5)."""
        row = (
            await session.execute(
                text("SELECT SLEEP(:s), :n, CONNECTION_ID()"), {"s": ms / 1000, "n": n}
            )
        ).one()
        return {"n": int(row[1]), "connection_id": int(row[2])}

    @app.post("/visits/{name}")
    async def visit(name: str, session: Session, fail: bool = False) -> dict[str, str | int]:
        """Count a visit through the ORM; `?fail=true` rolls the transaction back."""
        row = await session.get(Visit, name, with_for_update=True)
        if row is None:
            row = Visit(name=name, hits=0)
            session.add(row)
        row.hits += 1
        await session.flush()
        if fail:
            raise HTTPException(status_code=409, detail=f"rolled back visit {row.hits} of {name}")
        return {"name": name, "hits": row.hits}

    @app.get("/visits")
    async def visits(session: Session) -> dict[str, int]:
        """Every page's count, and the total."""
        rows = (await session.scalars(select(Visit).order_by(Visit.name))).all()
        total = (await session.execute(select(func.coalesce(func.sum(Visit.hits), 0)))).scalar()
        return {**{v.name: v.hits for v in rows}, "_total": int(total or 0)}

    @app.get("/health")
    async def health(request: Request) -> dict[str, int | float]:
        """The pool's counters (no connection needed)."""
        pool: AsyncConnectionPool = request.app.state.pool
        return dict(pool.get_stats())

    return app


app = create_app()
"""The application for `uvicorn examples.fastapi_orm_app:app`."""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aiopool FastAPI ORM example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--max-size", type=int, default=10, help="pool max_size")
    args = parser.parse_args(argv)
    app = create_app(min_size=min(2, args.max_size), max_size=args.max_size)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
