//! `mediavault fake-platforms`: the fake WeChat and Weibo APIs alone, for tests and local
//! development. Only in builds with the `demo` feature.

use std::net::SocketAddr;

pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let fake = crate::platforms::fake::FakePlatforms::new(Default::default());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "fake WeChat and Weibo APIs on http://{}",
        listener.local_addr()?
    );
    Ok(fake.serve(listener).await?)
}
