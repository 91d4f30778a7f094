// A virtualised task table: only the rows in view (plus a few) exist in the DOM, so
// thousands of tasks scroll smoothly; the caller batches data changes per animation
// frame and calls `render()` once.

/** Fixed row height in px (virtualisation needs it; matches `.row` in style.css). */
export const ROW_HEIGHT = 34;
/** Rows rendered above and below the viewport, so fast scrolling shows no blank. */
const OVERSCAN = 8;

export class VirtualTable {
  /**
   * @param {HTMLElement} viewport   the scrolling element
   * @param {(task: object, row: HTMLElement) => void} fill   writes one row
   */
  constructor(viewport, fill) {
    this.viewport = viewport;
    this.fill = fill;
    this.rows = [];
    this.spacer = document.createElement('div');
    this.spacer.className = 'spacer';
    this.body = document.createElement('div');
    this.body.className = 'rows';
    viewport.append(this.spacer, this.body);
    this.pool = [];
    let queued = false;
    viewport.addEventListener('scroll', () => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        this.render();
      });
    });
    new ResizeObserver(() => this.render()).observe(viewport);
  }

  /** Replaces the (already filtered and sorted) rows. */
  setRows(rows) {
    this.rows = rows;
  }

  render() {
    const { viewport, rows } = this;
    this.spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(viewport.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(rows.length, first + visible);
    this.body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    // Reuse row elements: no DOM churn while scrolling or on updates.
    while (this.pool.length < last - first) {
      const row = document.createElement('div');
      row.className = 'row';
      this.body.append(row);
      this.pool.push(row);
    }
    this.pool.forEach((row, i) => {
      const task = rows[first + i];
      if (task) {
        row.hidden = false;
        this.fill(task, row);
      } else {
        // A spare row keeps nothing of the task it showed (tests and styles key on these).
        row.hidden = true;
        row.removeAttribute('data-id');
        row.removeAttribute('data-state');
      }
    });
  }
}
