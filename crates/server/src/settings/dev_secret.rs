//! The development secret: generated once into the data folder, readable
//! by its owner only, and refused when others may read it or it is too
//! short to be a key.

use std::path::Path;

use super::env::SettingsError;

/// The development secret: generated once, kept in `DATA_DIR/secret_key`
/// with mode 0600, so tokens survive restarts without any set-up. A key
/// file that others may read, or that is too short to be a key, is refused
/// rather than used or overwritten; so is one shorter than `min_len`.
pub(super) fn development_secret(
    data_dir: &Path,
    min_len: usize,
    notices: &mut Vec<String>,
) -> Result<Vec<u8>, SettingsError> {
    let path = data_dir.join("secret_key");
    let io_error = |e: std::io::Error| {
        SettingsError(format!(
            "SECRET_KEY is not set and {} cannot be used: {e}",
            path.display()
        ))
    };
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) => {
            refuse_shared_key_file(&path, &metadata)?;
            let existing = std::fs::read_to_string(&path).map_err(io_error)?;
            let existing = existing.trim();
            if existing.len() < min_len {
                return Err(SettingsError(format!(
                    "SECRET_KEY is not set and {} holds a key shorter than {min_len} bytes: delete the file to generate a new key, or set SECRET_KEY",
                    path.display()
                )));
            }
            notices.push(format!(
                "SECRET_KEY is not set: using the development key kept in {}",
                path.display()
            ));
            Ok(existing.as_bytes().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(data_dir).map_err(io_error)?;
            let key = random_secret();
            write_new_private_file(&path, &key).map_err(io_error)?;
            notices.push(format!(
                "SECRET_KEY is not set: generated a development key into {} (set SECRET_KEY in production)",
                path.display()
            ));
            Ok(key.into_bytes())
        }
        Err(e) => Err(io_error(e)),
    }
}

/// 64 random letters and digits.
fn random_secret() -> String {
    latchkey_auth::csrf::new_csrf_token() + &latchkey_auth::csrf::new_csrf_token()
}

#[cfg(unix)]
fn refuse_shared_key_file(path: &Path, metadata: &std::fs::Metadata) -> Result<(), SettingsError> {
    use std::os::unix::fs::PermissionsExt;
    if !metadata.is_file() {
        return Err(SettingsError(format!(
            "SECRET_KEY is not set and {} is not a regular file: refused",
            path.display()
        )));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SettingsError(format!(
            "SECRET_KEY is not set and {} may be read by other users (mode {mode:o}): refused; make it readable by its owner only (chmod 600) or set SECRET_KEY",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared_key_file(_: &Path, _: &std::fs::Metadata) -> Result<(), SettingsError> {
    Ok(())
}

/// Creates the data folder readable by its owner only.
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes a new file, mode 0600, never through a symlink and never over an
/// existing file.
#[cfg(unix)]
fn write_new_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_new_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
