//! NCHW ↔ NHWC at the edges of the operators: tract's tensors are channel-major (NCHW), the
//! operators' buffers pixel-major (NHWC, each pixel's channels contiguous, as the micro-kernel
//! reads its rows).

/// `to[j × to_stride + i] = from[i × from_stride + j]` for `i < rows`, `j < columns`: one
/// image's `rows` channels of `columns` pixels into pixel-major rows of stride `to_stride`, or the
/// reverse. In 8 × 8 blocks, so that both sides are read and written a cache line at a time.
pub fn transpose(
    from: &[f32],
    from_stride: usize,
    rows: usize,
    columns: usize,
    to: &mut [f32],
    to_stride: usize,
) {
    const BLOCK: usize = 8;
    for i0 in (0..rows).step_by(BLOCK) {
        let i1 = (i0 + BLOCK).min(rows);
        for j0 in (0..columns).step_by(BLOCK) {
            let j1 = (j0 + BLOCK).min(columns);
            for i in i0..i1 {
                let src = &from[i * from_stride + j0..i * from_stride + j1];
                for (j, &value) in (j0..j1).zip(src) {
                    to[j * to_stride + i] = value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposing_twice_gives_back_the_input() {
        let (rows, columns) = (13, 21);
        let from: Vec<f32> = (0..rows * columns).map(|i| i as f32).collect();
        let mut middle = vec![0.0; columns * (rows + 3)];
        transpose(&from, columns, rows, columns, &mut middle, rows + 3);
        assert_eq!(middle[5 * (rows + 3) + 2], from[2 * columns + 5]);
        let mut back = vec![0.0; rows * columns];
        transpose(&middle, rows + 3, columns, rows, &mut back, columns);
        assert_eq!(back, from);
    }
}
