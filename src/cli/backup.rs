//! `mediavault backup FILE`: an encrypted, consistent snapshot of the store, taken while the server
//! may be running (see `vault::backup`).

use std::path::Path;

use crate::config::Config;

pub async fn run(config: &Config, file: &Path) -> anyhow::Result<()> {
    let header = crate::vault::backup::backup(config, file).await?;
    println!(
        "backup written to {} (mode 0600): {} audit entries, chain head #{} {}",
        file.display(),
        header.entries,
        header.chain_head.seq,
        header.chain_head.hash
    );
    if crate::vault::seal::is_sealed_mode(config) {
        println!(
            "it opens only with a quorum of the custodians' shares in force now (the root key they split; a rekey keeps it, and after `keys rotate-root` it still needs these shares)"
        );
    } else {
        println!(
            "it opens only with the root key file in use now ({}); keep a copy of that key apart from the backup",
            config.root_key_path().display()
        );
    }
    Ok(())
}
