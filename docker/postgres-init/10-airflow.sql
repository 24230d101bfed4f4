-- Run by the official postgres image on the first start of an empty data volume (as the superuser,
-- over the container's Unix socket): what `python -m longtail.deploy.pgsetup` does for `make up`.
-- The role airflow logs in with LONGTAIL_PG_PASSWORD (compose passes it as POSTGRES_PASSWORD) and
-- owns the database airflow; the superuser loses its password, so it logs in over the container's
-- own Unix socket only (trust, socket 0700), like `make up`'s.
\getenv pw POSTGRES_PASSWORD
CREATE ROLE airflow WITH LOGIN PASSWORD :'pw';
CREATE DATABASE airflow OWNER airflow ENCODING 'UTF8';
ALTER ROLE postgres WITH PASSWORD NULL;
