//! TLS to Dify's PostgreSQL (issue 14): a private PostgreSQL cluster made
//! here with `ssl = on`, a self-signed certificate from rcgen, and a
//! `pg_hba.conf` that accepts TLS connections only (`hostssl`), so a
//! connection that succeeds is encrypted. `sslmode` in the DSN decides:
//! `verify-full` checks the certificate against `sslrootcert` and the host
//! name, `verify-ca` the chain only, `require`
//! and the default `prefer` encrypt without checking, `disable` is refused
//! by this server.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest PostgreSQL binaries installed (scripts/peers/postgres.sh
/// installs them).
fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (run scripts/peers/postgres.sh)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("an initdb under /usr/lib/postgresql")
}

/// Runs a PostgreSQL tool as the postgres user (initdb refuses root).
fn as_postgres(program: &Path, args: &[&str]) {
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let status = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args)
            .status()
    } else {
        Command::new(program).args(args).status()
    }
    .expect("run a PostgreSQL tool");
    assert!(status.success(), "{} {args:?} failed", program.display());
}

fn chown_postgres(path: &Path) {
    let _ = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status();
}

struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"],
        );
    }
}

fn start_tls_cluster(cert_pem: &str, key_pem: &str) -> Cluster {
    let bin = pg_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    chown_postgres(dir.path());
    let data_s = data.to_str().expect("utf-8");
    as_postgres(
        &bin.join("initdb"),
        &["-D", data_s, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
    );
    std::fs::write(data.join("server.crt"), cert_pem).expect("cert");
    std::fs::write(data.join("server.key"), key_pem).expect("key");
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .expect("pg_hba");
    chown_postgres(dir.path());
    let _ = Command::new("chmod")
        .args(["600"])
        .arg(data.join("server.key"))
        .status();
    let port = loupe_fsutil::ports::free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {data_s} -c ssl=on \
         -c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off"
    );
    as_postgres(
        &bin.join("pg_ctl"),
        &[
            "-D",
            data_s,
            "-l",
            &format!("{data_s}/log.txt"),
            "-w",
            "-o",
            &options,
            "start",
        ],
    );
    Cluster { dir, port, bin }
}

#[tokio::test]
async fn sslmode_in_the_dsn_decides_tls_and_verification() {
    let server =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cluster = start_tls_cluster(&server.cert.pem(), &server.signing_key.serialize_pem());
    let ca = cluster.dir.path().join("ca.pem");
    std::fs::write(&ca, server.cert.pem()).expect("ca");
    let stranger =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let wrong_ca = cluster.dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong_ca, stranger.cert.pem()).expect("wrong ca");
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);

    for dsn in [
        format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display()),
        format!("{base}?sslmode=verify-ca&sslrootcert={}", ca.display()),
        format!("{base}?sslmode=require"),
        base.clone(),
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            cluster.port,
            ca.display()
        ),
    ] {
        let client = loupe_dify::schema::connect(&dsn)
            .await
            .unwrap_or_else(|e| panic!("{dsn}: {e}"));
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("pg_stat_ssl");
        assert!(row.get::<_, bool>(0), "{dsn}: not encrypted");
    }

    // A server whose certificate the CA did not sign is refused, as is a
    // plain connection (this server accepts TLS only).
    let err = loupe_dify::schema::connect(&format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        wrong_ca.display()
    ))
    .await
    .expect_err("wrong CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        loupe_dify::schema::connect(&format!("{base}?sslmode=disable"))
            .await
            .is_err()
    );

    // Reached by a name the certificate was not issued for (it names
    // 127.0.0.1): verify-full refuses, verify-ca checks the chain only and
    // connects, and still refuses a chain its CA did not sign.
    let by_name = format!("postgres://postgres@localhost:{}/postgres", cluster.port);
    let err = loupe_dify::schema::connect(&format!(
        "{by_name}?sslmode=verify-full&sslrootcert={}",
        ca.display()
    ))
    .await
    .expect_err("verify-full checks the host name");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let client = loupe_dify::schema::connect(&format!(
        "{by_name}?sslmode=verify-ca&sslrootcert={}",
        ca.display()
    ))
    .await
    .expect("verify-ca does not check the host name");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    assert!(row.get::<_, bool>(0), "verify-ca: not encrypted");
    let err = loupe_dify::schema::connect(&format!(
        "{by_name}?sslmode=verify-ca&sslrootcert={}",
        wrong_ca.display()
    ))
    .await
    .expect_err("verify-ca checks the chain");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}
