using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Runs a case within its <see cref="CaseBudget"/>: a case whose planned cost exceeds the budget
/// is refused before it runs (bad input, located at the step that crosses it); a case that runs
/// past its time is reported as a <see cref="CaseStatus.Timeout"/>. A case cannot be interrupted
/// in-process, so a timed-out case is left running on its own thread, with its targets: the
/// caller must give the next case fresh targets (<paramref name="abandoned"/> says when).
/// </summary>
public static class BudgetedRun
{
    /// <summary>Reads and runs one case file within the budget (a malformed file is reported as <see cref="CorpusReplay.RunFile"/> does).</summary>
    public static CaseResult RunFile(string file, RunOptions options, CaseBudget budget, out bool abandoned)
    {
        abandoned = false;
        ParseResult parsed = CaseFile.Read(file);
        return parsed.Succeeded
            ? Run(parsed.Case with { SourceName = file }, options, budget, out abandoned)
            : CorpusReplay.RunFile(file, options);
    }

    public static CaseResult Run(EptCase @case, RunOptions options, CaseBudget budget, out bool abandoned)
    {
        ArgumentNullException.ThrowIfNull(@case);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(budget);
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

        CaseResult? result = null;
        Exception? failure = null;
        var thread = new Thread(
            () =>
            {
                try
                {
                    result = CaseRunner.Run(@case, options);
                }
                catch (Exception e)
                {
                    // Rethrown on the caller's thread below: never swallowed.
                    failure = e;
                }
            },
            maxStackSize: 16 << 20)
        {
            IsBackground = true,
            Name = "eptfuzz case",
        };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        thread.Start();
        if (!thread.Join(budget.Time))
        {
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
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }

        return result!;
    }
}
