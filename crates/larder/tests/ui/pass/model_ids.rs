//! The id: a field named `id`, or the field marked `#[larder(id)]`, of any
//! type that is `Display` and `Clone`.

use larder::CachedModel;
use larder::model::model_key;

#[derive(CachedModel)]
#[larder(prefix = "order")]
struct Order {
    id: u64,
    lines: Vec<String>,
}

#[derive(CachedModel)]
#[larder(prefix = "user")]
struct User {
    id: u64, // not the id: `username` is marked
    #[larder(id)]
    username: String,
}

#[derive(CachedModel)]
#[larder(prefix = "r-raw.ident_s")]
struct Raw {
    r#id: u32,
    r#type: String,
}

fn main() -> larder::Result<()> {
    assert_eq!(model_key::<Order>(&7)?, "order:7");
    let user = User { id: 1, username: "ada".into() };
    assert_eq!(user.id(), "ada");
    assert_eq!(model_key::<User>(&user.id())?, "user:ada");
    assert_eq!(model_key::<Raw>(&3)?, "r-raw.ident_s:3");
    let _ = (Order { id: 1, lines: vec![] }.lines, Raw { id: 1, r#type: String::new() }.r#type);
    Ok(())
}
