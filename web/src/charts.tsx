/**
 * The overview's charts, drawn by recharts: axes with units, readable numbers, a legend and
 * tooltips. Loaded on demand, so that other pages do not wait for the chart library.
 */
import { useTranslation } from 'react-i18next';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { useFormat } from './i18n';

export interface Point {
  /** The bucket's start (ISO). */
  at: string;
  [series: string]: number | string;
}

export interface Series {
  key: string;
  name: string;
  color: string;
}

export default function Chart({ title, unit, points, series, hours }: { title: string; unit: string; points: Point[]; series: Series[]; hours?: boolean }) {
  const { t } = useTranslation();
  const f = useFormat();
  // Days are UTC days (the log's buckets); hours are shown in the browser's time zone.
  const tick = hours ? f.hour : f.utcDayShort;
  const label = hours ? f.dateTime : f.utcDay;
  const empty = points.every((p) => series.every((s) => Number(p[s.key]) === 0));
  // Screen readers hear the buckets that have something in them.
  const spoken = points
    .filter((p) => series.some((s) => Number(p[s.key]) > 0))
    .map((p) => `${label(p.at)}: ${series.map((s) => `${f.num(Number(p[s.key]))} ${s.name}`).join(', ')}`)
    .join('; ');
  return (
    <figure className="card chart">
      <figcaption>{title}</figcaption>
      {empty ? (
        <p className="muted">{t('overview.noRequests')}</p>
      ) : (
        <div role="img" aria-label={`${title}. ${spoken}`} className="chart-box">
          <ResponsiveContainer width="100%" height={220}>
            <BarChart data={points} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
              <CartesianGrid strokeDasharray="3 3" stroke="var(--border)" vertical={false} />
              <XAxis dataKey="at" tickFormatter={tick} stroke="var(--muted)" fontSize={11} minTickGap={8} />
              <YAxis stroke="var(--muted)" fontSize={11} allowDecimals={false} tickFormatter={(v: number) => f.num(v)} width={56} label={{ value: unit, angle: -90, position: 'insideLeft', fill: 'var(--muted)', fontSize: 11 }} />
              <Tooltip
                labelFormatter={(v) => label(String(v))}
                formatter={(v, name) => [f.num(Number(v)), name]}
                contentStyle={{ background: 'var(--surface)', border: '1px solid var(--border)', color: 'var(--fg)' }}
              />
              {series.length > 1 && <Legend />}
              {series.map((s) => (
                <Bar key={s.key} dataKey={s.key} name={s.name} stackId="a" fill={s.color} isAnimationActive={false} />
              ))}
            </BarChart>
          </ResponsiveContainer>
        </div>
      )}
    </figure>
  );
}
