-- Runs once, when the PostgreSQL volume is first initialised, as POSTGRES_USER (the owner).
-- POSTGRES_DB creates Urza's database; Simic keeps its field reports in its own.
CREATE DATABASE simic;
