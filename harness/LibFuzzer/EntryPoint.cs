using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.LibFuzzer;

/// <summary>
/// One libFuzzer input: decoded to a case (<see cref="ChoiceDecoder"/>), run model against impl
/// exactly as <c>eptfuzz fuzz</c> runs it (intent checks and table accounting included), and a
/// finding written as a normal <c>.ept</c> file, atomically, before libFuzzer is told: libFuzzer
/// stops the process at the first crash it hears of.
/// </summary>
internal sealed class EntryPoint(EntrySettings settings)
{
    private const string Targets = "model,impl";

    private readonly RunOptions options = new()
    {
        Hypervisor = () => new EptFuzz.Impl.Hypervisor.EptHypervisor(),
        Targets = [new EptFuzz.Targets.Model.ModelTarget(), new EptFuzz.Impl.Target.ImplTarget()],
        Known = settings.Known,
        ReplayCommand = file => $"./eptfuzz replay {file} --targets {Targets} --trace",
    };

    public void Execute(ReadOnlySpan<byte> input)
    {
        EptCase c = ChoiceDecoder.Decode(input);
        CaseResult result;
        try
        {
            result = CaseRunner.Run(c, options);
        }
        catch (Exception e)
        {
            // The runner reports code under test that throws as a finding; an exception here is the
            // harness's own defect. The case is still written, then the exception goes to libFuzzer.
            string path = Path.Combine(settings.Findings, $"harness-error-{ChoiceDecoder.Sha1(input)}.ept");
            FindingFile.WriteAtomic(path, CasePrinter.Print(c with { HeaderComments = [$"found by: libFuzzer (eptfuzz-libfuzzer): the harness threw {e.GetType().Name}: {e.Message}".Replace('\n', ' ')] }));
            Console.Error.WriteLine($"eptfuzz-libfuzzer: the harness threw on this case; it is written to {path}");
            throw;
        }

        switch (result.Status)
        {
            case CaseStatus.Diverged:
            case CaseStatus.ExpectationFailed:
                throw new FindingReported(Record(c, result, input));
            case CaseStatus.InfrastructureFailure:
                // Never a finding: say it and stop (the driver exits with this code).
                Console.Error.WriteLine($"eptfuzz-libfuzzer: infrastructure failure: {result.Message}");
                Environment.Exit(ExitCodes.Infrastructure);
                break;
            default:
                // Passed, a known divergence, a case a target refused (bad input, unsupported): nothing to report.
                break;
        }
    }

    /// <summary>Writes the raw finding, then (within the reduce time) its reduction; returns the line to report.</summary>
    private string Record(EptCase c, CaseResult result, ReadOnlySpan<byte> input)
    {
        string key = Reducer.KeyOf(result)!;
        string hash = FindingFile.HashOf(key);
        string sha1 = ChoiceDecoder.Sha1(input);
        var origin = new FindingOrigin($"libFuzzer (eptfuzz-libfuzzer), input sha1 {sha1}");
        string rawPath = Path.Combine(settings.Findings, $"finding-{hash}.raw.ept");
        EptCase raw = c with
        {
            HeaderComments =
            [
                $"found by: {origin.FoundBy} (generator {origin.GeneratorVersion}, the input's bytes are the generator's choices)",
                FindingHeader.SignatureLine(key),
                $"raw finding, {c.Steps.Length} steps, not reduced",
                $"first divergence: {result.Message}".Replace('\n', ' '),
                $"replay: {options.ReplayCommand(rawPath)}",
            ],
            SourceName = rawPath,
        };
        FindingFile.WriteAtomic(rawPath, CasePrinter.Print(raw));
        if (settings.ReduceTime <= TimeSpan.Zero)
        {
            return $"{key}: finding written to {rawPath} (replay: {options.ReplayCommand(rawPath)})";
        }

        ReductionResult r = Reducer.Reduce(c, x => CaseRunner.Run(x, options), key, settings.ReduceTime);
        string path = Path.Combine(settings.Findings, $"finding-{hash}.ept");
        FindingFile.WriteAtomic(path, CasePrinter.Print(FindingFile.Annotate(r, origin, path, options.ReplayCommand)));
        return $"{key}: finding written to {path}, {r.StepsAfter} steps (raw: {rawPath}; replay: {options.ReplayCommand(path)})";
    }

    /// <summary>
    /// Tells SharpFuzz's runner (which reports an escaping exception to libFuzzer as a crash, printing
    /// it) that this input is a finding; printed as one line, since it is a verdict, not a defect.
    /// </summary>
    private sealed class FindingReported(string message) : Exception(message)
    {
        public override string ToString() => $"eptfuzz-libfuzzer: finding: {Message}";
    }
}
