// `sqlx::migrate!` embeds the migrations at compile time; without this, cargo does not rebuild
// the crate when a migration file is added, and a dev build would run without it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
