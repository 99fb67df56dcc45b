#[derive(serde::Serialize)]
struct Report {
    id: u64,
}

#[larder::cached(namespace = "report")]
async fn report(id: u64) -> Report {
    Report { id }
}

fn main() {}
