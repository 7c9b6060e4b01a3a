//! `mediavault restore FILE --data-dir DIR`: restores a backup into an empty directory and proves
//! it whole (audit chain, keys, every secret) before it finishes (see `vault::backup`).

use std::path::Path;

use crate::config::Config;

pub async fn run(
    config: &Config,
    file: &Path,
    dir: &Path,
    root_key: Option<&Path>,
    seal_file: Option<&Path>,
) -> anyhow::Result<()> {
    let r = crate::vault::backup::restore(config, file, dir, root_key, seal_file).await?;
    println!(
        "restored into {}: audit chain verified through entry #{} {}; opened {} credential versions, {} TOTP seeds, {} checkout posts",
        dir.display(),
        r.header.chain_head.seq,
        r.header.chain_head.hash,
        r.credentials,
        r.seeds,
        r.contents
    );
    if dir.join("seal.json").exists() {
        println!(
            "sealed mode: {} names the custodians whose shares opened the backup; point data_dir at {} to serve it (it starts sealed)",
            dir.join("seal.json").display(),
            dir.display()
        );
    } else {
        println!(
            "the root key is at {}; point data_dir at {} to serve it",
            dir.join("root.key").display(),
            dir.display()
        );
    }
    Ok(())
}
