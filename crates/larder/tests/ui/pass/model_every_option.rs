//! `#[derive(CachedModel)]` with every option, the Django original's
//! `Product`.

use std::time::Duration;

use larder::CachedModel;

const ONE_DAY: u64 = 24 * 60 * 60;

#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "category")]
pub struct Category {
    id: u64,
    name: String,
}

/// A product.
#[derive(Debug, Clone, PartialEq, CachedModel)]
#[larder(prefix = "product", timeout = ONE_DAY, version = "2.0")]
#[larder(related(category), exclude(internal_notes, draft), enabled = true, critical)]
pub struct Product {
    id: u64,
    name: String,
    price_cents: u64,
    category: Category,
    internal_notes: String,
    draft: Option<Vec<u8>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> larder::Result<()> {
    let options = Product::OPTIONS;
    assert_eq!(options.timeout, Duration::from_secs(ONE_DAY));
    assert_eq!(options.version, "2.0");
    assert!(options.enabled && options.critical);
    assert_eq!(options.related, ["category"]);

    let cache = larder::Cache::in_memory();
    let product = Product {
        id: 1,
        name: "Teapot".into(),
        price_cents: 1999,
        category: Category { id: 3, name: "Kitchen".into() },
        internal_notes: "supplier owes us".into(),
        draft: Some(vec![1]),
    };
    cache.cache_model(&product).await?;
    let cached = cache.get_cached_model::<Product>(1).await?;
    assert_eq!(
        cached,
        Some(Product { internal_notes: String::new(), draft: None, ..product })
    );
    Ok(())
}
