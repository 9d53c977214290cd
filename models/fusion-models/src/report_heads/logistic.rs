//! L2-regularised logistic regression with per-row weights, fitted by
//! L-BFGS (Nocedal, "Updating quasi-Newton matrices with limited storage",
//! Math. Comp. 1980; two-loop recursion as in Nocedal & Wright, *Numerical
//! Optimization*, 2nd ed., Algorithm 7.4) with a backtracking Armijo line
//! search. Everything is f64, single-threaded and deterministic: the same
//! data and settings give bit-identical weights, so `fusion train`
//! reproduces a package exactly.
//!
//! Objective, for rows xᵢ ∈ ℝᴰ, labels yᵢ ∈ {0, 1}, row weights cᵢ ≥ 0
//! (bootstrap counts) and strength λ = 1/C:
//! f(w, b) = Σᵢ cᵢ·[softplus(zᵢ) − yᵢ·zᵢ] + (λ/2)·‖w‖², zᵢ = w·xᵢ + b;
//! the intercept b is not penalised (as scikit-learn's `LogisticRegression`
//! with `C`).

/// Rows of features, row-major `[n, D]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// Number of features D.
    pub width: usize,
    /// `n × D` values, row-major.
    pub values: Vec<f64>,
}

impl Design {
    /// Number of rows n.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.width).unwrap_or(0)
    }

    /// Row `i` (`D` values).
    #[must_use]
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// A fitted model: weights `[D]` and intercept.
#[derive(Debug, Clone, PartialEq)]
pub struct Logistic {
    /// Weights, one per feature.
    pub weights: Vec<f64>,
    /// Intercept.
    pub bias: f64,
}

impl Logistic {
    /// The logit z = w·x + b of one row (`x` has D values).
    #[must_use]
    pub fn logit(&self, x: &[f64]) -> f64 {
        dot(&self.weights, x) + self.bias
    }
}

/// Settings of a fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOptions {
    /// Inverse regularisation strength C > 0 (λ = 1/C).
    pub c: f64,
    /// Iteration cap.
    pub max_iterations: usize,
    /// Stop when the gradient's max-norm falls below this, relative to the
    /// total row weight.
    pub tolerance: f64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            c: 1.0,
            max_iterations: 500,
            tolerance: 1e-6,
        }
    }
}

/// Fits the model. `labels` and `row_weights` have one entry per row; rows
/// with weight 0 do not take part (out of the bootstrap sample).
///
/// # Panics
/// Never on consistent input; lengths that disagree are a programming error
/// caught by a debug assertion, and the fit then uses the shortest length.
#[must_use]
pub fn fit(design: &Design, labels: &[bool], row_weights: &[f64], options: FitOptions) -> Logistic {
    debug_assert_eq!(design.rows(), labels.len());
    debug_assert_eq!(labels.len(), row_weights.len());
    let d = design.width;
    let lambda = 1.0 / options.c.max(f64::MIN_POSITIVE);
    let total_weight: f64 = row_weights.iter().sum::<f64>().max(1.0);
    // Parameters θ = (w₀ … w_{D−1}, b).
    let mut theta = vec![0.0; d + 1];
    let objective = |theta: &[f64], grad: &mut [f64]| -> f64 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        let (w, b) = theta.split_at(d);
        let mut f = 0.0;
        for ((i, &y), &c) in labels.iter().enumerate().zip(row_weights) {
            if c == 0.0 {
                continue;
            }
            let x = design.row(i);
            let z = dot(w, x) + b[0];
            let yv = f64::from(u8::from(y));
            f += c * (softplus(z) - yv * z);
            let r = c * (sigmoid(z) - yv);
            for (g, &xj) in grad[..d].iter_mut().zip(x) {
                *g += r * xj;
            }
            grad[d] += r;
        }
        for (g, &wj) in grad[..d].iter_mut().zip(w) {
            *g += lambda * wj;
        }
        f + 0.5 * lambda * dot(w, w)
    };

    const MEMORY: usize = 10;
    let mut grad = vec![0.0; d + 1];
    let mut f = objective(&theta, &mut grad);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut new_grad = vec![0.0; d + 1];
    for _ in 0..options.max_iterations {
        if max_abs(&grad) <= options.tolerance * total_weight {
            break;
        }
        // Two-loop recursion: direction = −H·grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let rho = 1.0 / dot(y, s);
            let a = rho * dot(s, &q);
            axpy(-a, y, &mut q);
            alphas.push((a, rho));
        }
        if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        } else {
            // First step: a scaled gradient step.
            let scale = 1.0 / max_abs(&grad).max(1.0);
            q.iter_mut().for_each(|v| *v *= scale);
        }
        for ((s, y), (a, rho)) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let beta = rho * dot(y, &q);
            axpy(a - beta, s, &mut q);
        }
        let direction: Vec<f64> = q.iter().map(|v| -v).collect();
        let slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart memory.
            s_hist.clear();
            y_hist.clear();
            continue;
        }
        // Backtracking Armijo line search.
        let mut step = 1.0;
        let mut candidate = theta.clone();
        let mut accepted = false;
        for _ in 0..40 {
            candidate
                .iter_mut()
                .zip(&theta)
                .zip(&direction)
                .for_each(|((c, t), p)| *c = t + step * p);
            let f_new = objective(&candidate, &mut new_grad);
            if f_new <= f + 1e-4 * step * slope {
                let s: Vec<f64> = candidate.iter().zip(&theta).map(|(a, b)| a - b).collect();
                let y: Vec<f64> = new_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
                if dot(&s, &y) > 1e-12 {
                    if s_hist.len() == MEMORY {
                        s_hist.remove(0);
                        y_hist.remove(0);
                    }
                    s_hist.push(s);
                    y_hist.push(y);
                }
                theta.clone_from(&candidate);
                grad.clone_from(&new_grad);
                let improvement = f - f_new;
                f = f_new;
                accepted = improvement >= 0.0;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    let bias = theta[d];
    theta.truncate(d);
    Logistic {
        weights: theta,
        bias,
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += a * xi);
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn sigmoid(z: f64) -> f64 {
    crate::calibration::sigmoid(z)
}

/// ln(1 + eᶻ) without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One feature, labels generated so the unpenalised optimum is known:
    /// with x ∈ {0, 1} the MLE gives σ(b) = rate at x = 0 and σ(w + b) =
    /// rate at x = 1.
    #[test]
    fn recovers_the_maximum_likelihood_solution_of_a_two_group_problem() {
        // x = 0: 1 positive of 4 (σ(b) = 0.25); x = 1: 3 of 4 (σ(w+b) = 0.75).
        let xs = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let ys = [true, false, false, false, true, true, true, false];
        let design = Design {
            width: 1,
            values: xs.to_vec(),
        };
        let m = fit(
            &design,
            &ys,
            &[1.0; 8],
            FitOptions {
                c: 1e12,
                ..FitOptions::default()
            },
        );
        let ln3 = 3.0_f64.ln();
        assert!((m.bias + ln3).abs() < 1e-5, "{m:?}");
        assert!((m.weights[0] - 2.0 * ln3).abs() < 1e-5, "{m:?}");
    }

    #[test]
    fn row_weights_act_as_repeated_rows_and_zero_weight_rows_are_left_out() {
        let design = Design {
            width: 2,
            values: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.2],
        };
        let ys = [true, false, true, false];
        let weighted = fit(&design, &ys, &[2.0, 1.0, 1.0, 0.0], FitOptions::default());
        let repeated = fit(
            &Design {
                width: 2,
                values: vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0],
            },
            &[true, true, false, true],
            &[1.0; 4],
            FitOptions::default(),
        );
        for (a, b) in weighted.weights.iter().zip(&repeated.weights) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!((weighted.bias - repeated.bias).abs() < 1e-6);
    }

    #[test]
    fn regularisation_shrinks_and_fits_are_deterministic() {
        let design = Design {
            width: 1,
            values: vec![-2.0, -1.0, 1.0, 2.0],
        };
        let ys = [false, false, true, true];
        let weak = fit(
            &design,
            &ys,
            &[1.0; 4],
            FitOptions {
                c: 100.0,
                ..FitOptions::default()
            },
        );
        let strong = fit(
            &design,
            &ys,
            &[1.0; 4],
            FitOptions {
                c: 0.1,
                ..FitOptions::default()
            },
        );
        assert!(weak.weights[0] > strong.weights[0] && strong.weights[0] > 0.0);
        let again = fit(
            &design,
            &ys,
            &[1.0; 4],
            FitOptions {
                c: 0.1,
                ..FitOptions::default()
            },
        );
        assert_eq!(strong, again);
    }
}
