"Shared pytest fixtures: throw-away databases."
import pytest

from cryptotft.db import connect


@pytest.fixture
def sqlite_url(tmp_path):
    "URL of a fresh SQLite file in the test's temporary folder."
    return f"sqlite:///{tmp_path}/cryptotft.db"


@pytest.fixture
def sqlite_db(sqlite_url):
    "A connected, initialised SQLite `Database`."
    db = connect(sqlite_url)
    db.init_db()
    yield db
    db.engine.dispose()
