using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// A campaign's reduction runner: takes a new finding (its case, signature and origin), reduces it
/// with run options of its own (no coverage observer, no trace) and writes findings/HASH.ept with
/// its .json (and .test.cs when asked). It runs cases itself and calls back into nothing: a
/// worker hands a divergence to the campaign, the campaign hands it here, and a record comes back.
/// The raw file is written before it is called.
/// </summary>
internal sealed class FindingReduction(CampaignFiles files, CampaignOptions options, CancellationToken stop)
{
    /// <summary>Reduces <paramref name="c"/> while it keeps <paramref name="signature"/>, running it as <paramref name="run"/> says (minus observer and trace), and writes the reduced finding.</summary>
    public FindingRecord Reduce(EptCase c, string signature, string hash, FindingOrigin origin, RunOptions run)
    {
        RunOptions quiet = run with { Observer = null, Trace = null };
        ReductionResult r = Reducer.Reduce(c, x => CaseRunner.Run(x, quiet), signature, options.ReduceCap, stop);
        string path = files.ReducedPath(hash);
        EptCase annotated = FindingFile.Annotate(r, origin, path, run.ReplayCommand);
        var record = new FindingRecord
        {
            Signature = signature,
            Hash = hash,
            StepsBefore = r.StepsBefore,
            StepsAfter = r.StepsAfter,
            ReduceSeconds = r.Elapsed.TotalSeconds,
            Message = r.Result.Message,
        };
        FindingFile.WriteAtomic(files.DetailPath(hash), CampaignFiles.DetailJson(record, r.Result));
        if (options.EmitRegressionTests)
        {
            FindingFile.WriteAtomic(files.TestPath(hash), RegressionTestEmitter.Emit(r.Case, signature, options.RegressionOptionsExpression));
        }

        FindingFile.WriteAtomic(path, CasePrinter.Print(annotated));
        return record;
    }
}
