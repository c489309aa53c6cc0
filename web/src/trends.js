// One uPlot line per headline metric (all/all) for the chosen window, fed by the updates the
// page has seen.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { METRIC_LABEL } from './model.js';

const COLORS = { nps: '#2563eb', csat: '#059669', ces: '#d97706', response_rate: '#7c3aed' };

export function createTrends(container, metricNames) {
  const charts = new Map(); // metric -> {plot, box, count, label}
  for (const m of metricNames) {
    const box = document.createElement('figure');
    box.className = 'trend';
    box.dataset.testid = `trend-${m}`;
    box.dataset.points = '0';
    const cap = document.createElement('figcaption');
    const label = document.createElement('span');
    label.textContent = METRIC_LABEL[m] || m;
    const count = document.createElement('span');
    count.className = 'hint';
    cap.append(label, ' ', count);
    const plotBox = document.createElement('div');
    plotBox.className = 'plot';
    box.append(cap, plotBox);
    container.append(box);
    const plot = new uPlot(
      {
        width: 300,
        height: 150,
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [
          { stroke: '#667', grid: { stroke: '#eef' }, size: 30 },
          { stroke: '#667', grid: { stroke: '#eef' }, size: 58 },
        ],
        series: [
          {},
          {
            label: METRIC_LABEL[m] || m,
            stroke: COLORS[m] || '#333',
            width: 2,
            points: { show: true, size: 4 },
          },
        ],
      },
      [[], []],
      plotBox,
    );
    charts.set(m, { plot, box, plotBox, count });
  }

  function resize() {
    for (const c of charts.values()) {
      const w = Math.max(200, Math.floor(c.plotBox.clientWidth));
      if (w !== c.plot.width) c.plot.setSize({ width: w, height: 150 });
    }
  }
  new ResizeObserver(resize).observe(container);

  // history: metric -> [[epoch s, score]] for the chosen window
  function update(historyOf) {
    for (const [m, c] of charts) {
      const h = historyOf(m) || [];
      c.plot.setData([h.map((p) => p[0]), h.map((p) => p[1])]);
      c.box.dataset.points = String(h.length);
      c.count.textContent = h.length === 1 ? '1 point' : `${h.length} points`;
    }
  }
  return { update, resize };
}
