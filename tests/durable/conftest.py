"""The throwaway PostgreSQL server of the store tests, for the crash loop's PostgreSQL trial."""

from tests.store.conftest import pg_server

__all__ = ["pg_server"]
