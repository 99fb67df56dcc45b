//! A database of products and categories, in memory, for the tests of
//! `get_or_load_model`: its loads can be counted and held open with
//! signals, so races are run step by step.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use larder::{Cache, Error};
use tokio::sync::oneshot;

use super::models::*;

/// The rows: products and categories, as a database would hold them.
#[derive(Clone, Default)]
pub struct Db {
    pub products: Arc<Mutex<HashMap<u64, (String, u64)>>>,
    pub categories: Arc<Mutex<HashMap<u64, String>>>,
    /// How many times a product was loaded.
    pub loads: Arc<AtomicUsize>,
}

impl Db {
    pub fn with(products: &[(u64, u64)]) -> Self {
        let db = Db::default();
        for &(id, category_id) in products {
            db.products
                .lock()
                .unwrap()
                .insert(id, (format!("Product {id}"), category_id));
            db.categories
                .lock()
                .unwrap()
                .insert(category_id, format!("Category {category_id}"));
        }
        db
    }

    /// The product row joined with its category, as a query would return it.
    pub fn product(&self, id: u64) -> Option<Product> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let (name, category_id) = self.products.lock().unwrap().get(&id).cloned()?;
        let category_name = self.categories.lock().unwrap().get(&category_id).cloned()?;
        Some(Product {
            id,
            name,
            price_cents: 999 + id,
            category: Category {
                id: category_id,
                name: category_name,
            },
            internal_notes: NOTES.into(),
        })
    }

    pub fn rename_product(&self, id: u64, name: &str) {
        self.products.lock().unwrap().get_mut(&id).unwrap().0 = name.into();
    }

    /// Adds product `id` in the existing category `category_id`.
    pub fn add_product(&self, id: u64, category_id: u64) {
        self.products
            .lock()
            .unwrap()
            .insert(id, (format!("Product {id}"), category_id));
    }

    pub fn rename_category(&self, id: u64, name: &str) {
        *self.categories.lock().unwrap().get_mut(&id).unwrap() = name.into();
    }
}

pub async fn load(cache: &Cache, db: &Db, id: u64) -> Option<Product> {
    cache
        .get_or_load_model::<Product, Error, _, _>(id, || async { Ok(db.product(id)) })
        .await
        .unwrap()
}

/// Starts a load of product `id` that reads its row, then waits for
/// `release` before returning it; resolves `read` once the row is read.
pub fn held_load(
    cache: &Cache,
    db: &Db,
    id: u64,
) -> (
    oneshot::Receiver<()>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Option<Product>>,
) {
    let (read_tx, read_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (cache, db) = (cache.clone(), db.clone());
    let task = tokio::spawn(async move {
        cache
            .get_or_load_model::<Product, Error, _, _>(id, || async move {
                let row = db.product(id);
                read_tx.send(()).unwrap();
                release_rx.await.unwrap();
                Ok(row)
            })
            .await
            .unwrap()
    });
    (read_rx, release_tx, task)
}
