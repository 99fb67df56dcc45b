//! A template cannot read fields of `self`; a keyed receiver must be
//! placed with `{self}`, a skipped one cannot be.

#[derive(serde::Serialize)]
struct Invoices {
    tenant: String,
}

impl Invoices {
    #[larder::cached(receiver = "skip", key = "{self.tenant}:{invoice}")]
    async fn by_field(&self, invoice: u64) -> String {
        format!("{}: {invoice}", self.tenant)
    }

    #[larder::cached(receiver = "key", key = "{invoice}")]
    async fn keyed_but_not_placed(&self, invoice: u64) -> String {
        format!("{}: {invoice}", self.tenant)
    }

    #[larder::cached(receiver = "skip", key = "{self}:{invoice}")]
    async fn skipped_but_placed(&self, invoice: u64) -> String {
        format!("{}: {invoice}", self.tenant)
    }
}

#[larder::cached(receiver = "skip")]
async fn free_function(invoice: u64) -> u64 {
    invoice
}

fn main() {}
