//! Populations: N patients with a configurable persona mix, simulated in parallel.

use crate::patient::{Patient, Persona, SimError};
use crate::reading::SimReading;
use crate::sim::PatientSim;
use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// The largest sum of (reduced) weights: one cycle of the assignment is this long.
pub const MAX_TOTAL_WEIGHT: u64 = 10_000;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Relative weights of personas in a population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonaMix {
    weights: Vec<(Persona, u32)>,
}

impl PersonaMix {
    /// A mix from `(persona, weight)` pairs; zero weights are dropped.
    pub fn new(weights: impl IntoIterator<Item = (Persona, u32)>) -> Result<PersonaMix, SimError> {
        let mut weights: Vec<_> = weights.into_iter().filter(|(_, w)| *w > 0).collect();
        if weights.is_empty() {
            return Err(SimError::EmptyMix);
        }
        // Reduced by the common divisor so that one cycle of the assignment stays short.
        let divisor = weights.iter().fold(0, |g, (_, w)| gcd(g, *w));
        for (_, w) in &mut weights {
            *w /= divisor;
        }
        let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total > MAX_TOTAL_WEIGHT {
            return Err(SimError::MixTooFine(total));
        }
        Ok(PersonaMix { weights })
    }

    /// Only one persona.
    pub fn only(persona: Persona) -> PersonaMix {
        PersonaMix {
            weights: vec![(persona, 1)],
        }
    }

    /// The weights.
    pub fn weights(&self) -> &[(Persona, u32)] {
        &self.weights
    }

    /// One cycle of the assignment: `total weight` personas in smooth weighted round-robin
    /// order (nginx's algorithm), so every prefix of the population follows the mix as
    /// closely as whole patients allow and adding patients never changes the first ones.
    fn cycle(&self) -> Vec<Persona> {
        let total: i64 = self.weights.iter().map(|(_, w)| i64::from(*w)).sum();
        let mut current = vec![0i64; self.weights.len()];
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for _ in 0..total {
            let mut best = 0;
            for (k, (_, w)) in self.weights.iter().enumerate() {
                current[k] += i64::from(*w);
                if current[k] > current[best] {
                    best = k;
                }
            }
            current[best] -= total;
            out.push(self.weights[best].0);
        }
        out
    }

    /// The personas of patients `0..n`.
    pub fn assign(&self, n: usize) -> Vec<Persona> {
        let cycle = self.cycle();
        (0..n).map(|i| cycle[i % cycle.len()]).collect()
    }

    /// The persona of patient `index` (costs one cycle of the mix; use [`PersonaMix::assign`]
    /// for many).
    pub fn persona_of(&self, index: u64) -> Persona {
        let cycle = self.cycle();
        cycle[(index % cycle.len() as u64) as usize]
    }
}

impl Default for PersonaMix {
    /// Diabetes-heavy, as a diabetes clinic's population: 3 type 1 on CGM, 3 poorly controlled
    /// type 2, 2 hypertensive, 3 both, 1 normotensive.
    fn default() -> Self {
        PersonaMix {
            weights: vec![
                (Persona::Type1Cgm, 3),
                (Persona::Type2Meter, 3),
                (Persona::Hypertension, 2),
                (Persona::Type2Hypertension, 3),
                (Persona::Normotensive, 1),
            ],
        }
    }
}

impl fmt::Display for PersonaMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (persona, weight)) in self.weights.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{persona}={weight}")?;
        }
        Ok(())
    }
}

impl FromStr for PersonaMix {
    type Err = SimError;

    /// Parses `type1-cgm=3,type2-meter=1` (a bare persona has weight 1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights = Vec::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = match entry.split_once('=') {
                Some((name, weight)) => (
                    name,
                    weight
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| SimError::BadMixEntry(entry.to_owned()))?,
                ),
                None => (entry, 1),
            };
            weights.push((name.parse::<Persona>()?, weight));
        }
        PersonaMix::new(weights)
    }
}

/// A population of patients generated from one seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    pub seed: u64,
    pub patients: Vec<Patient>,
}

impl Population {
    /// `n` patients from `seed` with the persona `mix`. Patient `i` depends only on the seed,
    /// `i` and its persona, so a larger population extends a smaller one.
    pub fn generate(seed: u64, n: usize, mix: &PersonaMix) -> Population {
        let patients = mix
            .assign(n)
            .into_iter()
            .zip(0u64..)
            .map(|(persona, i)| Patient::generate(persona, seed, i))
            .collect();
        Population { seed, patients }
    }

    /// Simulates every patient over `[start, end)` on `threads` threads and hands each
    /// patient's readings to `sink` (called from the worker threads, in no particular order).
    /// Memory stays at one patient's window per thread.
    pub fn simulate<F>(&self, start: DateTime<Utc>, end: DateTime<Utc>, threads: usize, sink: F)
    where
        F: Fn(&Patient, Vec<SimReading>) + Sync,
    {
        let threads = threads.clamp(1, self.patients.len().max(1));
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(patient) = self.patients.get(i) else {
                            break;
                        };
                        let mut sim = PatientSim::new(patient, start);
                        let mut out = Vec::new();
                        sim.advance_to(end, &mut out);
                        sink(patient, out);
                    }
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_assigns_in_proportion() {
        let mix: PersonaMix = "type1-cgm=3, hypertension=1".parse().expect("valid mix");
        let personas: Vec<_> = (0..8).map(|i| mix.persona_of(i)).collect();
        let t1 = personas.iter().filter(|p| **p == Persona::Type1Cgm).count();
        assert_eq!(t1, 6, "{personas:?}");
        assert_eq!(mix.to_string(), "type1-cgm=3,hypertension=1");
        assert!("type3=1".parse::<PersonaMix>().is_err());
        assert!("type1-cgm=x".parse::<PersonaMix>().is_err());
        assert!("type1-cgm=0".parse::<PersonaMix>().is_err());
        assert!(
            "type1-cgm=9999,normotensive=9998"
                .parse::<PersonaMix>()
                .is_err()
        );
        let reduced: PersonaMix = "type1-cgm=40,normotensive=20".parse().expect("valid mix");
        assert_eq!(reduced.to_string(), "type1-cgm=2,normotensive=1");
    }

    #[test]
    fn every_prefix_follows_the_mix() {
        let mix = PersonaMix::default();
        let total: u32 = mix.weights().iter().map(|(_, w)| w).sum();
        for n in 1..60u64 {
            for (persona, w) in mix.weights() {
                let count = (0..n).filter(|i| mix.persona_of(*i) == *persona).count() as f64;
                let ideal = n as f64 * f64::from(*w) / f64::from(total);
                assert!(
                    (count - ideal).abs() <= 1.0,
                    "{persona} n={n}: {count} vs {ideal}"
                );
            }
        }
    }
}
