//! A template cannot tell two instantiations apart: generic functions use
//! the digest key, or skip the parameter explicitly.

trait Table {
    const NAME: &'static str;
}

#[larder::cached(key = "{id}")]
async fn row<T: Table>(id: u64) -> String {
    format!("{} {id}", T::NAME)
}

#[larder::cached(key = "{id}")]
async fn chunk<const N: usize>(id: u64) -> usize {
    id as usize * N
}

#[larder::cached(key = "{id}")]
async fn shown(id: impl std::fmt::Display + Send) -> String {
    id.to_string()
}

fn main() {}
