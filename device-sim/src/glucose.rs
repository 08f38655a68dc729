//! The glucose–insulin model: Bergman's minimal model extended with Hovorka's gut and
//! subcutaneous-insulin absorption chains, endogenous secretion for type 2, exercise, the dawn
//! phenomenon and an interstitial compartment for the CGM.
//!
//! The equations and the source of every parameter are in `docs/simulator.md`; the short
//! version, with `G` plasma glucose (mg/dL), `Xa` remote insulin action (1/min), `I` plasma
//! insulin (µU/mL), `D1,D2`, `F1,F2`, `L1,L2` carbohydrate in the gut (mg) absorbed at the
//! meal's, a fast and a slow (fat- and protein-rich meal) rate, `S1,S2` subcutaneous insulin
//! (mU), `IG` interstitial glucose (mg/dL), `Z` the post-exercise rise of insulin sensitivity:
//!
//! ```text
//! dG/dt  = −(S_G + α·E)·G − (1 + β·E + Z)·Xa·G + R0·P(t) + (D2/τ_G + F2/τ_F + L2/τ_L)/(V_G·BW)
//! dXa/dt = −p2·(Xa − f(t)·S_I·I)          f(t) = f_day·exp(η(t)), η an Ornstein–Uhlenbeck process
//! dI/dt  = (S2/τ_I)/(V_I·BW) + σ(G) − k_e·I          σ(G) = max(0, k_e·I_b + γ·(G − G_b))  (type 2)
//! dD1/dt = −D1/τ_G            dD2/dt = (D1 − D2)/τ_G   (a meal adds A_G·carbs to D1)
//! dF1/dt = −F1/τ_F            dF2/dt = (F1 − F2)/τ_F   (fast: rescue, high glycaemic index)
//! dL1/dt = −L1/τ_L            dL2/dt = (L1 − L2)/τ_L   (slow: fat- and protein-rich meals)
//! dS1/dt = u_basal − S1/τ_I   dS2/dt = (S1 − S2)/τ_I   (a bolus adds its mU to S1)
//! dIG/dt = (G − IG)/τ_IG
//! dZ/dt  = k_Z·E − Z/τ_Z
//! R0 = (S_G + S_I·I_b)·G_b,   P(t) = (1 + dawn(t))·(1 − metformin effect)
//! ```
//!
//! Written with an absolute insulin action `Xa` the model is Bergman's
//! `dG/dt = −(p1 + X)·G + p1·G_b` with `X = Xa − S_I·I_b` and `p1 = S_G`, plus the production
//! term that keeps `G_b` the equilibrium at basal insulin; `Xa` is never negative, so exercise
//! can scale it.

use crate::rng::{self, SimRng};

/// Which kind of diabetes the model represents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diabetes {
    /// No endogenous insulin; subcutaneous basal and bolus insulin.
    Type1,
    /// Insulin resistance and impaired secretion; oral medication (metformin).
    Type2,
}

/// Subcutaneous insulin therapy (type 1): what the patient believes their doses should be.
#[derive(Debug, Clone, PartialEq)]
pub struct InsulinTherapy {
    /// Basal insulin delivered continuously (pump, or long-acting analogue treated as flat), U/h.
    pub basal_u_per_h: f64,
    /// Carbohydrate covered by one unit, g/U, as the patient uses it (includes their bias).
    pub carb_ratio_g_per_u: f64,
    /// Glucose lowered by one unit, mg/dL per U, as the patient uses it.
    pub sensitivity_mg_dl_per_u: f64,
    /// Glucose the patient corrects towards, mg/dL.
    pub target_mg_dl: f64,
}

/// Endogenous insulin secretion (type 2).
#[derive(Debug, Clone, PartialEq)]
pub struct Secretion {
    /// Secretion gain above the basal glucose, µU/mL per min per mg/dL (β-cell responsiveness).
    pub gamma: f64,
}

/// Metformin: lowers hepatic glucose output.
#[derive(Debug, Clone, PartialEq)]
pub struct Metformin {
    /// Largest fractional reduction of glucose production.
    pub max_effect: f64,
    /// Plasma elimination half-life, minutes.
    pub half_life_min: f64,
    /// Drug level (doses, each adding 1) giving half the largest effect.
    pub ec50: f64,
}

/// Exercise effects (structure after Breton 2008).
#[derive(Debug, Clone, PartialEq)]
pub struct ExerciseEffect {
    /// Insulin-independent glucose uptake per unit of intensity, 1/min.
    pub alpha: f64,
    /// Rise of insulin action per unit of intensity during exercise.
    pub beta: f64,
    /// Build-up rate of the post-exercise sensitivity per unit of intensity, 1/min.
    pub k_z: f64,
    /// Decay time of the post-exercise sensitivity, minutes.
    pub tau_z_min: f64,
}

impl Default for ExerciseEffect {
    fn default() -> Self {
        ExerciseEffect {
            alpha: 0.006,
            beta: 1.0,
            k_z: 0.01,
            tau_z_min: 360.0,
        }
    }
}

/// One patient's glucose–insulin parameters. Units as documented per field.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseParams {
    pub diabetes: Diabetes,
    /// Body weight, kg.
    pub body_weight_kg: f64,
    /// Glucose effectiveness `S_G` (Bergman's p1), 1/min.
    pub s_g: f64,
    /// Insulin sensitivity `S_I` = p3/p2, 1/min per µU/mL.
    pub s_i: f64,
    /// Rate of remote insulin action `p2`, 1/min.
    pub p2: f64,
    /// Equilibrium glucose at basal insulin (fasting glucose without medication), mg/dL.
    pub g_b: f64,
    /// Basal plasma insulin, µU/mL (type 1: set by the basal dose; type 2: fasting insulin).
    pub i_b: f64,
    /// Glucose distribution volume, dL/kg.
    pub v_g_dl_per_kg: f64,
    /// Insulin distribution volume, L/kg.
    pub v_i_l_per_kg: f64,
    /// Plasma insulin elimination rate, 1/min.
    pub k_e: f64,
    /// Subcutaneous insulin absorption time-to-maximum `τ_I`, min.
    pub tau_insulin_min: f64,
    /// Meal carbohydrate absorption time-to-maximum `τ_G`, min.
    pub tau_meal_min: f64,
    /// Fast (rescue, high glycaemic index) carbohydrate absorption time-to-maximum `τ_F`, min.
    pub tau_fast_min: f64,
    /// Slow (fat- and protein-rich meal) carbohydrate absorption time-to-maximum `τ_L`, min.
    pub tau_slow_min: f64,
    /// Carbohydrate bioavailability `A_G`.
    pub bioavailability: f64,
    /// Plasma-to-interstitial glucose time constant `τ_IG`, min.
    pub tau_interstitial_min: f64,
    /// Dawn phenomenon: peak rise of glucose production, as a fraction of basal production.
    pub dawn_amplitude: f64,
    /// Dawn phenomenon: local minute of day of the peak.
    pub dawn_peak_minute: f64,
    /// Dawn phenomenon: width (standard deviation of the Gaussian bump), minutes.
    pub dawn_width_min: f64,
    /// Day-to-day variability of insulin sensitivity: log-scale standard deviation.
    pub daily_sensitivity_sigma: f64,
    /// Within-day variability of insulin sensitivity (stress, hormones, illness, site
    /// absorption): stationary log-scale standard deviation of an Ornstein–Uhlenbeck process.
    pub drift_sensitivity_sigma: f64,
    /// Correlation time of that process, minutes.
    pub drift_tau_min: f64,
    pub exercise: ExerciseEffect,
    /// Type 1: insulin therapy.
    pub insulin: Option<InsulinTherapy>,
    /// Type 2: endogenous secretion.
    pub secretion: Option<Secretion>,
    /// Type 2: metformin, when prescribed.
    pub metformin: Option<Metformin>,
}

/// Hovorka et al. 2004 (Physiol Meas 25:905) population values.
pub mod hovorka {
    /// Glucose distribution volume, 0.16 L/kg = 1.6 dL/kg.
    pub const V_G_DL_PER_KG: f64 = 1.6;
    /// Insulin distribution volume, L/kg.
    pub const V_I_L_PER_KG: f64 = 0.12;
    /// Insulin elimination rate, 1/min.
    pub const K_E: f64 = 0.138;
    /// Time-to-maximum of subcutaneous insulin absorption, min.
    pub const T_MAX_I: f64 = 55.0;
    /// Time-to-maximum of carbohydrate absorption, min.
    pub const T_MAX_G: f64 = 40.0;
    /// Carbohydrate bioavailability.
    pub const A_G: f64 = 0.8;
}

impl GlucoseParams {
    /// Glucose distribution volume of this patient, dL.
    pub fn v_g(&self) -> f64 {
        self.v_g_dl_per_kg * self.body_weight_kg
    }

    /// Insulin distribution volume of this patient, L.
    pub fn v_i(&self) -> f64 {
        self.v_i_l_per_kg * self.body_weight_kg
    }

    /// Basal glucose production per dL of distribution volume, mg/dL/min: the term that makes
    /// `G_b` the equilibrium at basal insulin.
    pub fn basal_production(&self) -> f64 {
        (self.s_g + self.s_i * self.i_b) * self.g_b
    }

    /// Steady plasma insulin for a subcutaneous infusion of `u_per_h`, µU/mL.
    pub fn insulin_for_basal(v_i_l: f64, k_e: f64, u_per_h: f64) -> f64 {
        u_per_h * 1000.0 / 60.0 / (v_i_l * k_e)
    }

    /// Glucose lowered by one unit of insulin at glucose `g_ref`, mg/dL per U: the integral of
    /// `S_I·ΔI·g_ref` over the action of the unit (linear chain: `∫ΔI dt = 1000/(V_I·k_e)`).
    pub fn model_sensitivity_per_unit(&self, g_ref: f64) -> f64 {
        self.s_i * g_ref * 1000.0 / (self.v_i() * self.k_e)
    }

    /// Carbohydrate one unit covers, g/U: the unit's glucose-lowering integral set against the
    /// glucose a gram adds (`A_G·1000/V_G` mg/dL), times `share`, the part of a meal insulin
    /// must clear (the rest is cleared by glucose effectiveness during the excursion).
    pub fn model_carb_ratio(&self, g_ref: f64, share: f64) -> f64 {
        let per_gram = self.bioavailability * 1000.0 / self.v_g();
        self.model_sensitivity_per_unit(g_ref) / (per_gram * share)
    }

    /// The dawn phenomenon's relative rise of glucose production at local minute `m`.
    pub fn dawn(&self, local_minute: f64) -> f64 {
        if self.dawn_amplitude == 0.0 {
            return 0.0;
        }
        let mut d = (local_minute - self.dawn_peak_minute).rem_euclid(1440.0);
        if d > 720.0 {
            d -= 1440.0;
        }
        let z = d / self.dawn_width_min;
        if z.abs() > 5.0 {
            0.0
        } else {
            self.dawn_amplitude * (-0.5 * z * z).exp()
        }
    }

    /// Draws a day's multiplicative sensitivity factor.
    pub(crate) fn draw_day_factor(&self, rng: &mut SimRng) -> f64 {
        rng::lognormal_factor(rng, self.daily_sensitivity_sigma).clamp(0.5, 2.0)
    }
}

/// How fast a carbohydrate intake is absorbed: which gut chain it enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Absorption {
    /// Glucose tablets, juice, white bread (`τ_F`).
    Fast,
    /// A mixed meal (`τ_G`).
    Mixed,
    /// The part of a fat- and protein-rich meal whose absorption is delayed (`τ_L`).
    Slow,
}

impl Absorption {
    pub(crate) fn first_compartment(self) -> usize {
        match self {
            Absorption::Fast => ix::F1,
            Absorption::Mixed => ix::D1,
            Absorption::Slow => ix::L1,
        }
    }
}

/// Indices of the state vector.
pub(crate) mod ix {
    pub const G: usize = 0;
    pub const XA: usize = 1;
    pub const I: usize = 2;
    pub const D1: usize = 3;
    pub const D2: usize = 4;
    pub const F1: usize = 5;
    pub const F2: usize = 6;
    pub const L1: usize = 7;
    pub const L2: usize = 8;
    pub const S1: usize = 9;
    pub const S2: usize = 10;
    pub const IG: usize = 11;
    pub const Z: usize = 12;
    pub const N: usize = 13;
}

/// Inputs held constant over one integration step (zero-order hold at the step's midpoint).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StepInputs {
    /// Subcutaneous basal infusion, mU/min.
    pub basal_mu_per_min: f64,
    /// Production multiplier `P(t)`: dawn and metformin.
    pub production: f64,
    /// Day's multiplicative insulin sensitivity.
    pub sensitivity: f64,
    /// Exercise intensity `E` in [0, 1] (fraction of the heart-rate reserve above rest).
    pub exercise: f64,
}

/// Constants precomputed from [`GlucoseParams`] so a step does no division it can avoid.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    s_g: f64,
    s_i: f64,
    p2: f64,
    r0: f64,
    inv_vg: f64,
    inv_vi: f64,
    k_e: f64,
    inv_tau_i: f64,
    inv_tau_g: f64,
    inv_tau_f: f64,
    inv_tau_l: f64,
    inv_tau_ig: f64,
    alpha: f64,
    beta: f64,
    k_z: f64,
    inv_tau_z: f64,
    /// `Some((k_e·I_b, γ, G_b))` when the pancreas secretes insulin.
    secretion: Option<(f64, f64, f64)>,
}

/// The model's state.
pub(crate) type State = [f64; ix::N];

impl Kernel {
    pub fn new(p: &GlucoseParams) -> Kernel {
        Kernel {
            s_g: p.s_g,
            s_i: p.s_i,
            p2: p.p2,
            r0: p.basal_production(),
            inv_vg: 1.0 / p.v_g(),
            inv_vi: 1.0 / p.v_i(),
            k_e: p.k_e,
            inv_tau_i: 1.0 / p.tau_insulin_min,
            inv_tau_g: 1.0 / p.tau_meal_min,
            inv_tau_f: 1.0 / p.tau_fast_min,
            inv_tau_l: 1.0 / p.tau_slow_min,
            inv_tau_ig: 1.0 / p.tau_interstitial_min,
            alpha: p.exercise.alpha,
            beta: p.exercise.beta,
            k_z: p.exercise.k_z,
            inv_tau_z: 1.0 / p.exercise.tau_z_min,
            secretion: p
                .secretion
                .as_ref()
                .map(|s| (p.k_e * p.i_b, s.gamma, p.g_b)),
        }
    }

    /// The steady state at basal insulin and glucose `G_b` (type 1: with the basal infusion).
    pub fn steady_state(&self, p: &GlucoseParams, basal_mu_per_min: f64) -> State {
        let mut s = [0.0; ix::N];
        s[ix::G] = p.g_b;
        s[ix::I] = p.i_b;
        s[ix::XA] = p.s_i * p.i_b;
        s[ix::S1] = basal_mu_per_min * p.tau_insulin_min;
        s[ix::S2] = basal_mu_per_min * p.tau_insulin_min;
        s[ix::IG] = p.g_b;
        s
    }

    #[inline]
    fn deriv(&self, s: &State, u: &StepInputs) -> State {
        let g = s[ix::G].max(0.0);
        let e = u.exercise;
        let ra =
            (s[ix::D2] * self.inv_tau_g + s[ix::F2] * self.inv_tau_f + s[ix::L2] * self.inv_tau_l)
                * self.inv_vg;
        let dg = -(self.s_g + self.alpha * e) * g
            - (1.0 + self.beta * e + s[ix::Z]) * s[ix::XA] * g
            + self.r0 * u.production
            + ra;
        let dxa = -self.p2 * (s[ix::XA] - u.sensitivity * self.s_i * s[ix::I]);
        let secretion = match self.secretion {
            Some((basal, gamma, g_b)) => (basal + gamma * (g - g_b)).max(0.0),
            None => 0.0,
        };
        let di = s[ix::S2] * self.inv_tau_i * self.inv_vi + secretion - self.k_e * s[ix::I];
        let d1 = s[ix::D1] * self.inv_tau_g;
        let f1 = s[ix::F1] * self.inv_tau_f;
        let l1 = s[ix::L1] * self.inv_tau_l;
        let s1 = s[ix::S1] * self.inv_tau_i;
        [
            dg,
            dxa,
            di,
            -d1,
            d1 - s[ix::D2] * self.inv_tau_g,
            -f1,
            f1 - s[ix::F2] * self.inv_tau_f,
            -l1,
            l1 - s[ix::L2] * self.inv_tau_l,
            u.basal_mu_per_min - s1,
            s1 - s[ix::S2] * self.inv_tau_i,
            (s[ix::G] - s[ix::IG]) * self.inv_tau_ig,
            self.k_z * e - s[ix::Z] * self.inv_tau_z,
        ]
    }

    /// Advances `s` by `h` minutes with the classical fourth-order Runge–Kutta method.
    #[inline]
    pub fn rk4(&self, s: &mut State, u: &StepInputs, h: f64) {
        let k1 = self.deriv(s, u);
        let k2 = self.deriv(&axpy(s, 0.5 * h, &k1), u);
        let k3 = self.deriv(&axpy(s, 0.5 * h, &k2), u);
        let k4 = self.deriv(&axpy(s, h, &k3), u);
        for i in 0..ix::N {
            s[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
        // Numerical round-off must not make an amount negative.
        for v in s.iter_mut() {
            if *v < 0.0 {
                *v = 0.0;
            }
        }
    }
}

#[inline]
fn axpy(s: &State, a: f64, k: &State) -> State {
    let mut out = *s;
    for i in 0..ix::N {
        out[i] += a * k[i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(diabetes: Diabetes) -> GlucoseParams {
        GlucoseParams {
            diabetes,
            body_weight_kg: 75.0,
            s_g: 0.012,
            s_i: 5e-4,
            p2: 0.025,
            g_b: 120.0,
            i_b: 10.0,
            v_g_dl_per_kg: hovorka::V_G_DL_PER_KG,
            v_i_l_per_kg: hovorka::V_I_L_PER_KG,
            k_e: hovorka::K_E,
            tau_insulin_min: hovorka::T_MAX_I,
            tau_meal_min: hovorka::T_MAX_G,
            tau_fast_min: 15.0,
            tau_slow_min: 120.0,
            bioavailability: hovorka::A_G,
            tau_interstitial_min: 7.0,
            dawn_amplitude: 0.0,
            dawn_peak_minute: 360.0,
            dawn_width_min: 80.0,
            daily_sensitivity_sigma: 0.0,
            drift_sensitivity_sigma: 0.0,
            drift_tau_min: 240.0,
            exercise: ExerciseEffect::default(),
            insulin: None,
            secretion: match diabetes {
                Diabetes::Type1 => None,
                Diabetes::Type2 => Some(Secretion { gamma: 0.05 }),
            },
            metformin: None,
        }
    }

    fn inputs(basal: f64) -> StepInputs {
        StepInputs {
            basal_mu_per_min: basal,
            production: 1.0,
            sensitivity: 1.0,
            exercise: 0.0,
        }
    }

    #[test]
    fn steady_state_is_an_equilibrium() {
        for diabetes in [Diabetes::Type1, Diabetes::Type2] {
            let mut p = params(diabetes);
            let basal = match diabetes {
                Diabetes::Type1 => {
                    // The basal infusion that yields I_b.
                    let mu = p.i_b * p.v_i() * p.k_e;
                    p.i_b = GlucoseParams::insulin_for_basal(p.v_i(), p.k_e, mu * 60.0 / 1000.0);
                    mu
                }
                Diabetes::Type2 => 0.0,
            };
            let k = Kernel::new(&p);
            let mut s = k.steady_state(&p, basal);
            for _ in 0..2000 {
                k.rk4(&mut s, &inputs(basal), 1.0);
            }
            assert!(
                (s[ix::G] - p.g_b).abs() < 1e-6,
                "{diabetes:?}: {}",
                s[ix::G]
            );
            assert!((s[ix::I] - p.i_b).abs() < 1e-6);
        }
    }

    #[test]
    fn a_meal_raises_glucose_and_the_gut_delivers_its_bioavailable_share() {
        let p = params(Diabetes::Type2);
        let k = Kernel::new(&p);
        let mut s = k.steady_state(&p, 0.0);
        s[ix::D1] += 60_000.0 * p.bioavailability;
        let mut peak: f64 = 0.0;
        for _ in 0..600 {
            k.rk4(&mut s, &inputs(0.0), 1.0);
            peak = peak.max(s[ix::G]);
        }
        assert!(peak > p.g_b + 30.0, "peak {peak}");
        assert!(
            s[ix::D1] + s[ix::D2] < 100.0,
            "gut should be nearly empty after 10 h"
        );
    }

    #[test]
    fn moderate_exercise_lowers_glucose_by_tens_of_mg_dl() {
        let mut p = params(Diabetes::Type1);
        p.s_g = 0.008;
        p.s_i = 5.5e-4;
        p.g_b = 150.0;
        let basal = p.i_b * p.v_i() * p.k_e;
        let k = Kernel::new(&p);
        let mut s = k.steady_state(&p, basal);
        let mut u = inputs(basal);
        u.exercise = 0.6;
        for _ in 0..45 {
            k.rk4(&mut s, &u, 1.0);
        }
        let drop = p.g_b - s[ix::G];
        assert!((25.0..60.0).contains(&drop), "drop {drop}");
        // Insulin sensitivity stays raised afterwards.
        assert!(s[ix::Z] > 0.1);
    }

    #[test]
    fn model_ratios_are_in_the_clinical_range() {
        let p = params(Diabetes::Type1);
        let isf = p.model_sensitivity_per_unit(120.0);
        let icr = p.model_carb_ratio(120.0, 0.8);
        // Clinical "1800 rule" and "500 rule" for a 40 U/day adult give about 45 and 12.
        assert!((25.0..80.0).contains(&isf), "ISF {isf}");
        assert!((6.0..25.0).contains(&icr), "ICR {icr}");
    }
}
