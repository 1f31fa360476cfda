using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>What <c>eptfuzz reduce FILE</c> did.</summary>
public sealed record ReduceFileResult
{
    /// <summary>Null when the file did not parse or showed no failure.</summary>
    public ReductionResult? Reduction { get; init; }

    /// <summary>Where the reduced case was written.</summary>
    public string? OutputPath { get; init; }

    /// <summary>Where the regression test was written (with <c>--emit-test</c>).</summary>
    public string? TestPath { get; init; }

    /// <summary>The one-line command that replays the reduced case.</summary>
    public string? Replay { get; init; }

    /// <summary>For people: the parse errors (FILE:LINE:COLUMN), "no failure to reduce", or what was reduced.</summary>
    public required string Message { get; init; }

    /// <summary>2 bad input, 0 nothing to reduce, 1 reduced a divergence or failed expectation, 3 infrastructure.</summary>
    public required int ExitCode { get; init; }
}

/// <summary><c>eptfuzz reduce FILE [--out PATH] [--reduce-time SEC] [--emit-test]</c>.</summary>
public static class ReduceCommand
{
    public static ReduceFileResult Run(string path, RunOptions options, TimeSpan cap, string? outPath = null, bool emitTest = false, string? testOptionsExpression = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(options);
        ParseResult parsed = CaseFile.Read(path);
        if (!parsed.Succeeded)
        {
            return new ReduceFileResult { Message = parsed.ErrorText(), ExitCode = ExitCodes.BadInput };
        }

        CaseResult first = CaseRunner.Run(parsed.Case with { SourceName = path }, options);
        if (first.Status == CaseStatus.InfrastructureFailure)
        {
            return new ReduceFileResult { Message = $"{path}: {first.Message}", ExitCode = ExitCodes.Infrastructure };
        }

        if (first.Status == CaseStatus.BadInput)
        {
            // Located already: FILE:LINE:COLUMN: message.
            return new ReduceFileResult { Message = first.Message, ExitCode = ExitCodes.BadInput };
        }

        if (Reducer.KeyOf(first) is not { } key)
        {
            return new ReduceFileResult { Message = $"{path}: every target agrees and every expectation holds; nothing to reduce", ExitCode = ExitCodes.Ok };
        }

        ReductionResult r = Reducer.Reduce(parsed.Case, c => CaseRunner.Run(c, options), key, cap);
        string output = outPath ?? Path.ChangeExtension(path, null) + ".reduced.ept";
        // Keep what the input said about where it came from (a campaign's "found by" and seed).
        var origin = new FindingOrigin($"eptfuzz reduce {path}")
        {
            GeneratorVersion = CaseGenerator.Version,
        };
        EptCase annotated = FindingFile.Annotate(r, origin, output, options.ReplayCommand);
        annotated = annotated with { HeaderComments = [.. parsed.Case.HeaderComments.Where(h => h.StartsWith("found by:", StringComparison.Ordinal) || h.StartsWith("case seed:", StringComparison.Ordinal)).Select(h => "input " + h), .. annotated.HeaderComments] };
        FindingFile.WriteAtomic(output, CasePrinter.Print(annotated));
        string? testPath = null;
        if (emitTest)
        {
            testPath = Path.ChangeExtension(output, null) + ".test.cs";
            FindingFile.WriteAtomic(testPath, RegressionTestEmitter.Emit(r.Case, key, testOptionsExpression));
        }

        return new ReduceFileResult
        {
            Reduction = r,
            OutputPath = output,
            TestPath = testPath,
            Replay = options.ReplayCommand(output),
            Message = $"{path}: {r.StepsBefore} steps reduced to {r.StepsAfter} in {r.Elapsed.TotalSeconds:0.00} s{(r.TimedOut ? " (stopped by the time cap)" : string.Empty)}, signature {key}; wrote {output}",
            ExitCode = ExitCodes.Divergence,
        };
    }
}
