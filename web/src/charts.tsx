/** Small SVG bar charts: no chart library, labelled for screen readers. */
export interface Bar {
  label: string;
  values: number[];
}

const COLORS = ['#2458d3', '#d92d20'];

export function BarChart({ title, bars, series }: { title: string; bars: Bar[]; series: string[] }) {
  const w = 640;
  const h = 160;
  const max = Math.max(1, ...bars.map((b) => b.values.reduce((a, v) => a + v, 0)));
  const bw = bars.length > 0 ? w / bars.length : w;
  // Screen readers hear the buckets that have something in them.
  const summary = bars
    .filter((b) => b.values.some((v) => v > 0))
    .map((b) => `${b.label}: ${b.values.map((v, i) => `${v} ${series[i]}`).join(', ')}`)
    .join('; ');
  return (
    <figure className="card chart">
      <figcaption>{title}</figcaption>
      {bars.every((b) => b.values.every((v) => v === 0)) ? (
        <p className="muted">No requests in this period yet.</p>
      ) : (
        <svg viewBox={`0 0 ${w} ${h + 18}`} role="img" aria-label={`${title}. ${summary}`} preserveAspectRatio="none">
          {bars.map((b, i) => {
            let y = h;
            return (
              <g key={b.label}>
                {b.values.map((v, s) => {
                  const bh = (v / max) * h;
                  y -= bh;
                  return (
                    <rect key={s} x={i * bw + 2} y={y} width={Math.max(1, bw - 4)} height={bh} fill={COLORS[s % COLORS.length]}>
                      <title>{`${b.label}: ${v} ${series[s]}`}</title>
                    </rect>
                  );
                })}
                {(bars.length <= 14 || i % Math.ceil(bars.length / 12) === 0) && (
                  <text x={i * bw + bw / 2} y={h + 14} textAnchor="middle" fontSize="10" className="axis">
                    {b.label}
                  </text>
                )}
              </g>
            );
          })}
        </svg>
      )}
      {series.length > 1 && (
        <p className="legend">
          {series.map((s, i) => (
            <span key={s}><span className="swatch" style={{ background: COLORS[i] }} /> {s}</span>
          ))}
        </p>
      )}
    </figure>
  );
}
