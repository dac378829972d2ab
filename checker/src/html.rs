//! HTML (filled in below).
