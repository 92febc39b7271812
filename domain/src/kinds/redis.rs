//! Redis targets: `redis://` or `rediss://` URLs; the password is put into the URL when
//! connecting.

use super::url::UrlKind;

pub static REDIS: UrlKind = UrlKind {
    name: "redis",
    help: "redis://host:6379/0 (rediss:// for TLS); the password goes in the secret",
    // rediss:// is TLS: moving between the two is moving elsewhere (see `destination`).
    schemes: &["redis", "rediss"],
    aliases: &[],
    default_port: 6379,
    file_options: &[],
    check: |address, limit| Box::pin(probes::redis::check(address, limit)),
};
