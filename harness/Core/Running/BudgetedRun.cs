using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Runs cases one after another within their <see cref="CaseBudget"/>: a case whose planned cost
/// exceeds the budget is refused before it runs (bad input, located at the step that crosses it);
/// a case that runs past its time is reported as a <see cref="CaseStatus.Timeout"/>. A case cannot
/// be interrupted in-process, so a timed-out case is left running on its own thread, with its
/// targets: the caller must give the next case fresh targets (<c>abandoned</c> says when).
/// </summary>
/// <remarks>
/// The cases run on one long-lived thread (a new one only after a timeout abandoned the last).
/// A thread per case cost replay and gate several times their running time: each case paid a
/// thread start and join, found the per-thread pools (pages, mirrors, accounting state) empty,
/// and an external target, which keeps one process per thread, was started afresh for every case.
/// </remarks>
public sealed class BudgetedRun : IDisposable
{
    private Lane? lane;
    private bool disposed;

    /// <summary>Reads and runs one case file within the budget (a malformed file is reported as <see cref="CorpusReplay.RunFile"/> does).</summary>
    public CaseResult RunFile(string file, RunOptions options, CaseBudget budget, out bool abandoned)
    {
        abandoned = false;
        ParseResult parsed = CaseFile.Read(file);
        return parsed.Succeeded
            ? Run(parsed.Case with { SourceName = file }, options, budget, out abandoned)
            : CorpusReplay.RunFile(file, options);
    }

    public CaseResult Run(EptCase @case, RunOptions options, CaseBudget budget, out bool abandoned)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(budget);
        ObjectDisposedException.ThrowIf(disposed, this);
        abandoned = false;
        if (CaseCost.Refusal(@case, budget, @case.SourceName) is { } refusal)
        {
            return new CaseResult
            {
                File = @case.SourceName,
                Status = CaseStatus.BadInput,
                Message = refusal.ToString(),
                Line = refusal.Line,
                Column = refusal.Column,
            };
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        lane ??= new Lane();
        if (!lane.TryRun(() => CaseRunner.Run(@case, options), budget.Time, out CaseResult? result, out Exception? failure))
        {
            // The lane's thread goes on with the abandoned case and ends after it; the next case gets a new one.
            lane = null;
            abandoned = true;
            return new CaseResult
            {
                File = @case.SourceName,
                Status = CaseStatus.Timeout,
                Message = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"timeout: the case ran past its time budget of {budget.Time.TotalSeconds:0.#} s (--case-time) and was abandoned"),
                Duration = clock.Elapsed,
            };
        }

        if (failure is not null)
        {
            // Rethrown on the caller's thread: never swallowed.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return result!;
    }

    /// <summary>Lets the lane's thread end (after the case it may still be running).</summary>
    public void Dispose()
    {
        disposed = true;
        lane?.Retire();
        lane = null;
    }

    /// <summary>One thread that runs the cases handed to it, one at a time.</summary>
    private sealed class Lane
    {
        private readonly object gate = new();
        private Func<CaseResult>? job;
        private CaseResult? result;
        private Exception? failure;
        private bool done;
        private bool retired;

        public Lane()
        {
            // 16 MiB of stack: a case's deepest recursion (the reference walk over guest and EPT
            // levels, the reducer's printer) stays far from it, whatever thread called.
            new Thread(Loop, maxStackSize: 16 << 20) { IsBackground = true, Name = "eptfuzz case" }.Start();
        }

        /// <summary>Runs <paramref name="work"/> on the lane; false when it did not end within <paramref name="limit"/> (the lane is then retired).</summary>
        public bool TryRun(Func<CaseResult> work, TimeSpan limit, out CaseResult? ran, out Exception? threw)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            lock (gate)
            {
                done = false;
                job = work;
                Monitor.PulseAll(gate);
                while (!done)
                {
                    TimeSpan left = limit == Timeout.InfiniteTimeSpan ? Timeout.InfiniteTimeSpan : limit - clock.Elapsed;
                    if ((left != Timeout.InfiniteTimeSpan && left <= TimeSpan.Zero) || !Monitor.Wait(gate, left))
                    {
                        if (!done)
                        {
                            retired = true;
                            ran = null;
                            threw = null;
                            return false;
                        }
                    }
                }

                ran = result;
                threw = failure;
                result = null;
                failure = null;
                return true;
            }
        }

        public void Retire()
        {
            lock (gate)
            {
                retired = true;
                Monitor.PulseAll(gate);
            }
        }

        private void Loop()
        {
            while (true)
            {
                Func<CaseResult> work;
                lock (gate)
                {
                    while (job is null && !retired)
                    {
                        Monitor.Wait(gate);
                    }

                    if (job is null)
                    {
                        return;
                    }

                    work = job;
                }

                CaseResult? ran = null;
                Exception? threw = null;
                try
                {
                    ran = work();
                }
                catch (Exception e)
                {
                    // Handed to the caller's thread, which rethrows it.
                    threw = e;
                }

                lock (gate)
                {
                    job = null;
                    result = ran;
                    failure = threw;
                    done = true;
                    Monitor.PulseAll(gate);
                    if (retired)
                    {
                        return;
                    }
                }
            }
        }
    }
}
