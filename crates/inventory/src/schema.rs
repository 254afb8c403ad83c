//! JSON body schema inference (being written).
