// A related model with related models of its own: the nested rows would be
// stored in this entry while only the shelf's id is recorded.
#[derive(larder::CachedModel)]
#[larder(prefix = "dept")]
struct Dept {
    id: u64,
    name: String,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "shelf", related(dept))]
struct Shelf {
    id: u64,
    dept: Dept,
}

#[derive(larder::CachedModel)]
#[larder(prefix = "item", related(shelf))]
struct Item {
    id: u64,
    shelf: Shelf,
}

fn main() {}
