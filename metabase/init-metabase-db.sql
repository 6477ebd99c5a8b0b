-- Runs once, when the PostgreSQL volume is first created: Metabase keeps its own settings
-- (users, questions, dashboards) in this database, apart from the cryptotft data.
CREATE DATABASE metabase OWNER cryptotft;
