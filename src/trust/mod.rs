//! What vouches for a log beyond its chain: signed notes and their keys, checkpoints, the
//! verifier state and the keys of forward-secure sealing. The checks that use them are in
//! [`crate::verify`](mod@crate::verify); the writer's side of sealing is in [`crate::writer`].

pub mod checkpoint;
pub mod note;
pub mod seal_key;
pub mod state;
