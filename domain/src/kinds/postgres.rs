//! PostgreSQL targets: `postgres://` URLs with libpq options; the password is put into the
//! URL when connecting; certificate options name files on the Lookout server.

use super::url::UrlKind;

pub static POSTGRES: UrlKind = UrlKind {
    name: "postgres",
    help: "postgres://user@host:5432/db?sslmode=require; the password goes in the secret",
    schemes: &["postgres", "postgresql"],
    aliases: &[("postgresql", "postgres")],
    default_port: 5432,
    file_options: &["sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir"],
    check: |address, limit| Box::pin(probes::postgres::check(address, limit)),
};
