//! Every generated item is documented: this crate denies missing docs.
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};

/// A row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Its id.
    pub id: u64,
}

/// Loads a row.
#[larder::cached(namespace = "row", ttl = 60)]
pub async fn load_row(id: u64) -> Row {
    Row { id }
}

/// Counts rows.
#[larder::cached(namespace = "count", ttl = 60)]
pub fn count_rows(table: String) -> usize {
    table.len()
}

/// A repository.
pub struct Repo {
    /// Its cache.
    pub cache: larder::Cache,
}

impl Repo {
    /// Loads a row through the repository's cache.
    #[larder::cached(namespace = "repo_row", cache = self.cache, receiver = "skip")]
    pub async fn row(&self, id: u64) -> Row {
        Row { id }
    }

    /// A sync method with `&mut self`.
    #[larder::cached(namespace = "repo_sum", cache = self.cache, receiver = "skip")]
    pub fn sum(&mut self, a: u64, b: u64) -> u64 {
        a + b
    }
}

fn main() {
    larder::init(larder::Cache::in_memory()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        assert_eq!(load_row(1).await, Row { id: 1 });
        assert_eq!(load_row_peek(1).await.unwrap(), Some(Row { id: 1 }));
        let repo = Repo { cache: larder::Cache::in_memory() };
        assert_eq!(repo.row(2).await, Row { id: 2 });
        assert!(repo.row_invalidate(2).await.unwrap());
    });
    assert_eq!(count_rows("jobs".into()), 4);
    assert!(count_rows_invalidate("jobs".into()).unwrap());
    let mut repo = Repo { cache: larder::Cache::in_memory() };
    assert_eq!(repo.sum(1, 2), 3);
    assert_eq!(repo.sum_peek(1, 2).unwrap(), Some(3));
}
