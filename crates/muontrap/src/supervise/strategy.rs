//! Restart strategies: which children are restarted when one of them dies.
//!
//! Children are kept in start order. OTP's strategies say which of them share the fate of the
//! one that died: only itself, all of them, or itself and those started after it (which
//! typically depend on it). The affected siblings are stopped in reverse start order and then
//! everything is started again in start order, so dependencies come up before dependants.

/// A supervisor's restart strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Strategy {
    /// Only the child that died is restarted (the default).
    #[default]
    OneForOne,
    /// All children are stopped and restarted.
    OneForAll,
    /// The child that died and every child started after it are stopped and restarted.
    RestForOne,
}

/// What the planner needs to know about each child, in start order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sibling {
    /// Whether it is running now (or about to, in a restart delay).
    pub running: bool,
    /// Whether it is temporary: stopped with the others, never started again (as in OTP).
    pub temporary: bool,
}

/// The steps of one restart.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestartPlan {
    /// Running siblings to stop first, in this order (reverse start order).
    pub stop: Vec<usize>,
    /// Children to start again, in this order (start order), the dead one included.
    pub start: Vec<usize>,
}

impl Strategy {
    /// Plans the restart of child `dead` (which must be restarted by its own policy) among
    /// `siblings` (in start order; `siblings[dead]` is ignored). Siblings that were not
    /// running stay as they are; temporary ones are stopped and not started again.
    pub fn plan(self, dead: usize, siblings: &[Sibling]) -> RestartPlan {
        assert!(dead < siblings.len(), "child {dead} out of range");
        let affected = match self {
            Strategy::OneForOne => dead..dead + 1,
            Strategy::OneForAll => 0..siblings.len(),
            Strategy::RestForOne => dead..siblings.len(),
        };
        let others = || {
            affected
                .clone()
                .filter(|&i| i != dead && siblings[i].running)
        };
        let mut stop: Vec<usize> = others().collect();
        stop.reverse();
        let start = affected
            .clone()
            .filter(|&i| i == dead || (siblings[i].running && !siblings[i].temporary))
            .collect();
        RestartPlan { stop, start }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP: Sibling = Sibling {
        running: true,
        temporary: false,
    };
    const DOWN: Sibling = Sibling {
        running: false,
        temporary: false,
    };
    const TEMP: Sibling = Sibling {
        running: true,
        temporary: true,
    };

    fn plan(s: Strategy, dead: usize, sib: &[Sibling]) -> (Vec<usize>, Vec<usize>) {
        let p = s.plan(dead, sib);
        (p.stop, p.start)
    }

    #[test]
    fn one_for_one_touches_only_the_dead_child() {
        let sib = [UP, UP, UP, UP];
        for dead in 0..4 {
            assert_eq!(plan(Strategy::OneForOne, dead, &sib), (vec![], vec![dead]));
        }
    }

    #[test]
    fn one_for_all_stops_the_others_in_reverse_and_starts_all_in_order() {
        let sib = [UP, UP, UP, UP];
        assert_eq!(
            plan(Strategy::OneForAll, 1, &sib),
            (vec![3, 2, 0], vec![0, 1, 2, 3])
        );
        assert_eq!(
            plan(Strategy::OneForAll, 0, &sib),
            (vec![3, 2, 1], vec![0, 1, 2, 3])
        );
        assert_eq!(
            plan(Strategy::OneForAll, 3, &sib),
            (vec![2, 1, 0], vec![0, 1, 2, 3])
        );
    }

    #[test]
    fn rest_for_one_restarts_the_dead_and_later_children() {
        let sib = [UP, UP, UP, UP];
        assert_eq!(
            plan(Strategy::RestForOne, 1, &sib),
            (vec![3, 2], vec![1, 2, 3])
        );
        assert_eq!(plan(Strategy::RestForOne, 3, &sib), (vec![], vec![3]));
        assert_eq!(
            plan(Strategy::RestForOne, 0, &sib),
            (vec![3, 2, 1], vec![0, 1, 2, 3])
        );
    }

    #[test]
    fn siblings_that_were_not_running_stay_down() {
        let sib = [UP, DOWN, UP, DOWN];
        assert_eq!(plan(Strategy::OneForAll, 2, &sib), (vec![0], vec![0, 2]));
        assert_eq!(plan(Strategy::RestForOne, 0, &sib), (vec![2], vec![0, 2]));
    }

    #[test]
    fn temporary_siblings_are_stopped_but_not_started_again() {
        let sib = [TEMP, UP, TEMP, UP];
        assert_eq!(
            plan(Strategy::OneForAll, 1, &sib),
            (vec![3, 2, 0], vec![1, 3])
        );
        assert_eq!(
            plan(Strategy::RestForOne, 1, &sib),
            (vec![3, 2], vec![1, 3])
        );
    }

    #[test]
    fn the_dead_childs_own_state_does_not_matter() {
        // It died, so it is not running; it is restarted because its policy said so.
        let sib = [UP, DOWN, UP];
        assert_eq!(plan(Strategy::OneForOne, 1, &sib), (vec![], vec![1]));
        assert_eq!(plan(Strategy::RestForOne, 1, &sib), (vec![2], vec![1, 2]));
    }

    /// Exhaustive over small shapes: invariants every plan keeps.
    #[test]
    fn plans_keep_their_invariants_for_every_small_shape() {
        for n in 1..=5usize {
            for mask in 0..(1u32 << (2 * n)) {
                let sib: Vec<Sibling> = (0..n)
                    .map(|i| Sibling {
                        running: mask & (1 << (2 * i)) != 0,
                        temporary: mask & (1 << (2 * i + 1)) != 0,
                    })
                    .collect();
                for dead in 0..n {
                    for s in [
                        Strategy::OneForOne,
                        Strategy::OneForAll,
                        Strategy::RestForOne,
                    ] {
                        let p = s.plan(dead, &sib);
                        assert!(p.start.contains(&dead), "{s:?} must restart the dead child");
                        assert!(
                            !p.stop.contains(&dead),
                            "the dead child is not stopped again"
                        );
                        assert!(
                            p.stop.windows(2).all(|w| w[0] > w[1]),
                            "stop is reverse order"
                        );
                        assert!(p.start.windows(2).all(|w| w[0] < w[1]), "start is in order");
                        assert!(p.stop.iter().all(|&i| sib[i].running), "only running stop");
                        for &i in &p.start {
                            assert!(i == dead || (sib[i].running && !sib[i].temporary));
                        }
                        if s == Strategy::RestForOne {
                            assert!(p.stop.iter().chain(&p.start).all(|&i| i >= dead));
                        }
                        if s == Strategy::OneForOne {
                            assert_eq!(p.start, vec![dead]);
                            assert!(p.stop.is_empty());
                        }
                    }
                }
            }
        }
    }
}
