//! Where a product's data may be: locations parsed strictly and resolved before anything
//! reads them.
//!
//! - A location is taken exactly as written: no trimming, no control characters, one
//!   scheme (`file://file:///…` is refused).
//! - A local path is canonicalised (symbolic links and `..` resolved); one that cannot be is
//!   refused, and so is anything inside the node's own data directory (its keys and
//!   database) or a folder holding it. The engine checks again at read time that every file
//!   read is at its real location (no symbolic link swapped in later).
//! - A remote URL is refused unless the operator allowed its prefix (none by default), and
//!   an `http`/`https` host that resolves to a loopback, private, link-local or otherwise
//!   internal address is refused unless the operator allowed those too.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use agora_model::DataSource;

use crate::NodeError;

/// What the operator allows beyond local files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationPolicy {
    /// URL prefixes remote data may be read from, e.g. `s3://open-data/` or
    /// `https://data.example.org/` (none by default).
    pub remote_prefixes: Vec<String>,
    /// Whether a remote host may resolve to a loopback, private or link-local address.
    pub allow_private_addresses: bool,
}

/// A resolved location: the URL for the engine, and the local path when there is one.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub url: String,
    pub local: Option<PathBuf>,
    pub is_dir: bool,
}

fn bad(path: &str, reason: impl Into<String>) -> NodeError {
    NodeError::BadLocation {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Whether an API client may register `location`: a remote URL (checked when it is
/// registered, against the operator's allow-list) or a local path inside one of `roots`,
/// the folders the node's operator allowed for API clients. Symbolic links and `..` are
/// resolved before comparing; what cannot be resolved is refused unless it is plainly
/// (absolute, no `..`) inside an allowed folder, where registration then says it is
/// missing. Outside, missing and forbidden look the same.
pub fn check_client_location(location: &str, roots: &[PathBuf]) -> Result<(), NodeError> {
    let Some(local) = local_path(location)? else {
        return Ok(());
    };
    let roots: Vec<PathBuf> = roots
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok())
        .collect();
    match std::fs::canonicalize(Path::new(local)) {
        Ok(canonical) if roots.iter().any(|r| canonical.starts_with(r)) => Ok(()),
        Err(_) if plainly_inside(Path::new(local), &roots) => Ok(()),
        _ => Err(NodeError::OutsideAllowedFolders(local.to_owned())),
    }
}

fn plainly_inside(path: &Path, roots: &[PathBuf]) -> bool {
    use std::path::Component;
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && roots.iter().any(|r| path.starts_with(r))
}

/// The local path a location names, strictly parsed (`None` for a remote URL).
pub fn local_path(location: &str) -> Result<Option<&str>, NodeError> {
    if location.is_empty() {
        return Err(bad(location, "the location is empty"));
    }
    if location.trim() != location || location.chars().any(char::is_control) {
        return Err(bad(
            location,
            "the location starts or ends with white space or holds a control character; give it exactly",
        ));
    }
    match location.split_once("://") {
        None => Ok(Some(location)),
        Some(("file", path)) => {
            if path.contains("://") {
                return Err(bad(location, "a location has one scheme"));
            }
            if !path.starts_with('/') {
                return Err(bad(
                    location,
                    "a file:// location needs an absolute path, as in file:///data/x.csv",
                ));
            }
            Ok(Some(path))
        }
        Some((scheme, _)) if DataSource::SCHEMES.contains(&scheme) => Ok(None),
        Some((scheme, _)) => Err(bad(
            location,
            format!("the scheme {scheme}:// is not supported (file, s3, gs, az, http, https)"),
        )),
    }
}

/// Canonicalises a local path; refuses what cannot be resolved and the node's own data.
pub fn canonical(path: &str, data_dir: &Path) -> Result<PathBuf, NodeError> {
    let canonical = std::fs::canonicalize(path).map_err(|e| {
        bad(
            path,
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => format!("cannot be resolved: {e}"),
            },
        )
    })?;
    if let Ok(own) = std::fs::canonicalize(data_dir)
        && (canonical.starts_with(&own) || own.starts_with(&canonical))
    {
        return Err(bad(
            path,
            "this is the node's own data directory (its keys and database), which is never a data product",
        ));
    }
    Ok(canonical)
}

/// Resolves a location for registration.
pub(crate) async fn resolve(
    location: &str,
    data_dir: &Path,
    policy: &LocationPolicy,
) -> Result<Resolved, NodeError> {
    let Some(path) = local_path(location)? else {
        check_remote(location, policy).await?;
        return Ok(Resolved {
            url: location.to_owned(),
            local: None,
            is_dir: location.ends_with('/'),
        });
    };
    let canonical = canonical(path, data_dir)?;
    let meta = std::fs::metadata(&canonical).map_err(|e| bad(location, e.to_string()))?;
    let is_dir = meta.is_dir();
    if !is_dir {
        std::fs::File::open(&canonical).map_err(|e| bad(location, format!("cannot read: {e}")))?;
    }
    let s = canonical
        .to_str()
        .ok_or_else(|| bad(location, "the path is not valid UTF-8"))?;
    let url = if is_dir {
        format!("file://{}/", s.trim_end_matches('/'))
    } else {
        format!("file://{s}")
    };
    Ok(Resolved {
        url,
        local: Some(canonical),
        is_dir,
    })
}

/// A remote URL is read only under a prefix the operator allowed, and never from an
/// internal address unless the operator allowed those.
async fn check_remote(location: &str, policy: &LocationPolicy) -> Result<(), NodeError> {
    let url = url::Url::parse(location).map_err(|e| bad(location, format!("not a URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            location,
            "credentials do not belong in a location; give them to the node in its environment",
        ));
    }
    if !policy
        .remote_prefixes
        .iter()
        .any(|p| !p.is_empty() && location.starts_with(p.as_str()))
    {
        return Err(bad(
            location,
            "remote data is read only from places the node's operator allowed (agora node start --allow-remote PREFIX)",
        ));
    }
    if matches!(url.scheme(), "http" | "https") && !policy.allow_private_addresses {
        let host = url
            .host_str()
            .ok_or_else(|| bad(location, "the URL has no host"))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs = tokio::net::lookup_host((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| bad(location, format!("cannot resolve the host: {e}")))?;
        for addr in addrs {
            if internal(addr.ip()) {
                return Err(bad(
                    location,
                    "the host resolves to an internal address (loopback, private or link-local), which the node does not read from unless its operator allows it",
                ));
            }
        }
    }
    Ok(())
}

/// Loopback, private, link-local, unspecified, shared or otherwise non-public addresses.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // shared (CGNAT)
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_taken_exactly_as_written() {
        for bad_location in [
            "",
            " /etc/passwd",
            "\t/etc/passwd",
            "/etc/passwd ",
            "/etc/pass\nwd",
            "file://file:///etc/passwd",
            "file://relative/x.csv",
            "ftp://host/x.csv",
        ] {
            assert!(local_path(bad_location).is_err(), "{bad_location:?}");
        }
        assert_eq!(local_path("/data/x.csv").unwrap(), Some("/data/x.csv"));
        assert_eq!(
            local_path("file:///data/x.csv").unwrap(),
            Some("/data/x.csv")
        );
        assert_eq!(local_path("s3://bucket/x.parquet").unwrap(), None);
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(!internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn remote_locations_need_the_operators_leave() {
        let none = LocationPolicy::default();
        let r = check_remote("http://127.0.0.1:9/anything", &none).await;
        assert!(r.unwrap_err().to_string().contains("allowed"));
        let local = LocationPolicy {
            remote_prefixes: vec!["http://127.0.0.1:9/".into()],
            allow_private_addresses: false,
        };
        let r = check_remote("http://127.0.0.1:9/anything", &local).await;
        assert!(r.unwrap_err().to_string().contains("internal address"));
        let r = check_remote("http://user:pw@127.0.0.1:9/x", &local).await;
        assert!(r.unwrap_err().to_string().contains("credentials"));
    }

    #[test]
    fn the_nodes_own_data_is_never_a_product() {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("agora-data");
        std::fs::create_dir_all(data_dir.join("trust")).unwrap();
        std::fs::write(data_dir.join("trust/node.key"), "secret").unwrap();
        let key = data_dir.join("trust/node.key");
        let e = canonical(key.to_str().unwrap(), &data_dir).unwrap_err();
        assert!(e.to_string().contains("own data directory"), "{e}");
        // Nor a folder that holds it, nor a symbolic link to it.
        assert!(canonical(tmp.path().to_str().unwrap(), &data_dir).is_err());
        let link = tmp.path().join("innocent.csv");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        assert!(canonical(link.to_str().unwrap(), &data_dir).is_err());
        // Paths that cannot be resolved are refused, and named.
        let e = canonical("/definitely/not/here.csv", &data_dir).unwrap_err();
        assert!(e.to_string().contains("no such file or folder"), "{e}");
    }
}
