//! `mediavault totp-code --secret S`: the current TOTP code, for the demo walkthrough and scripts.

use anyhow::Context;

pub fn run(secret: &str) -> anyhow::Result<()> {
    let seed =
        crate::identity::totp::seed_from_base32(secret).context("not a base32 TOTP secret")?;
    let now = crate::clock::Clock::system().unix();
    println!(
        "{}",
        crate::identity::totp::code_at(&seed, now).context("cannot compute the code")?
    );
    Ok(())
}
