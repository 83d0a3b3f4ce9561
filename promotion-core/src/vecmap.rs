//! A small ordered map kept in a sorted `Vec`: for the handful of stages of a release and
//! gates of a phase, where a `BTreeMap`'s 11-slot nodes would waste most of their memory.
//! Private to the core: the state types hand out iterators and lookups, never the map, so it
//! can change without a host noticing.

use std::borrow::Borrow;

/// An ordered map over a sorted vector. Lookups are binary searches; inserts shift.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VecMap<K, V> {
    items: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap { items: Vec::new() }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        VecMap { items: Vec::new() }
    }
    fn find<Q>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.items.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }
    /// The value for `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key)
            .ok()
            .and_then(|i| self.items.get(i))
            .map(|(_, v)| v)
    }
    /// The value for `key`, mutably.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self.find(key) {
            Ok(i) => self.items.get_mut(i).map(|(_, v)| v),
            Err(_) => None,
        }
    }
    /// Whether `key` is present.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.find(key).is_ok()
    }
    /// Inserts, returning the previous value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => self
                .items
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.1, value)),
            Err(i) => {
                self.items.insert(i, (key, value));
                None
            }
        }
    }
    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (&K, &V)> + DoubleEndedIterator {
        self.items.iter().map(|(k, v)| (k, v))
    }
    /// Values in key order, mutably.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }
}

impl<'a, K, V> IntoIterator for &'a VecMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_an_ordered_map() {
        let mut m = VecMap::new();
        assert_eq!(m.insert("b".to_string(), 2), None);
        assert_eq!(m.insert("a".to_string(), 1), None);
        assert_eq!(m.insert("b".to_string(), 3), Some(2));
        m.insert("c".to_string(), 5);
        *m.get_mut("a").unwrap() += 10;
        assert_eq!(
            m.iter().map(|(k, v)| (k.as_str(), *v)).collect::<Vec<_>>(),
            [("a", 11), ("b", 3), ("c", 5)]
        );
        assert_eq!(m.get("c"), Some(&5));
        assert!(m.get("z").is_none());
        assert_eq!(m.iter().len(), 3);
    }
}
