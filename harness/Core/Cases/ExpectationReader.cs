using EptFuzz.Contract;

namespace EptFuzz.Harness.Cases;

/// <summary>
/// Reads the words after <c>=&gt;</c> and checks that the expectation fits its step: an operation
/// expects ok or an error name; an access ok hpa=, violation, misconfig or page-fault; entry an
/// entry; vmentry a vmentry verdict.
/// </summary>
internal static class ExpectationReader
{
    /// <param name="tokens">(start, length) of the words after the arrow; at least one.</param>
    /// <param name="category">The kind of step it belongs to (known from the verb even when the step's keys were bad).</param>
    public static Expectation? Read(ErrorSink errors, string text, int line, List<(int Start, int Length)> tokens, StepCategory category, string verb)
    {
        (int start, int length) = tokens[0];
        ReadOnlySpan<char> word = text.AsSpan(start, length);
        var position = new SourcePosition(line, start + 1);

        Expectation? result;
        bool failed = false;
        if (word.SequenceEqual("vmentry"))
        {
            result = VmEntry(errors, text, line, tokens, ref failed);
        }
        else if (word.SequenceEqual("ok") && tokens.Count == 1)
        {
            result = new ResultExpectation(ApiResult.Ok);
        }
        else if (CaseSyntax.TryResult(word, out ApiResult apiResult) && apiResult != ApiResult.Ok)
        {
            result = new ResultExpectation(apiResult);
            for (int i = 1; i < tokens.Count; i++)
            {
                errors.Report(line, tokens[i].Start + 1, $"=> {apiResult} takes nothing after it, found {CaseSyntax.Quote(text.AsSpan(tokens[i].Start, tokens[i].Length))}");
                failed = true;
            }
        }
        else
        {
            string[]? keys = word switch
            {
                "ok" => ["hpa", "mt", "size"],
                "violation" => ["qual", "gpa", "gla"],
                "misconfig" => ["gpa"],
                "page-fault" => ["code"],
                "entry" => ["a", "d", "value"],
                _ => null,
            };
            if (keys is null)
            {
                errors.Report(line, start + 1, $"unknown expectation {CaseSyntax.Quote(word)} (ok, an error name such as Unaligned, violation, misconfig, page-fault, entry, vmentry)");
                return null;
            }

            string kind = word.ToString();
            var f = new StepFields(errors, text, line, "=> " + kind, start + 1);
            for (int i = 1; i < tokens.Count; i++)
            {
                f.Add(tokens[i].Start, tokens[i].Length, keys);
            }

            result = kind switch
            {
                "ok" => f.Require<ulong>("hpa", CaseSyntax.TryNumber) is { } hpa
                    ? new TranslatedExpectation(new Hpa(hpa), f.Get<MemoryType>("mt", CaseSyntax.TryMemoryType), f.Get<ulong>("size", CaseSyntax.TrySize))
                    : null,
                "violation" => f.Require<ulong>("qual", CaseSyntax.TryNumber) is { } q
                    ? new ViolationExpectation(q, ToGpa(f.Get<ulong>("gpa", CaseSyntax.TryNumber)), ToGva(f.Get<ulong>("gla", CaseSyntax.TryNumber)))
                    : null,
                "misconfig" => new MisconfigExpectation(ToGpa(f.Get<ulong>("gpa", CaseSyntax.TryNumber))),
                "page-fault" => f.Require<uint>("code", TryErrorCode) is { } code ? new PageFaultExpectation(code) : null,
                _ => Entry(f),
            };
            failed = f.Failed;
        }

        if (failed || result is null)
        {
            return null;
        }

        if (!Fits(result, category))
        {
            errors.Report(line, start + 1, $"=> {word} does not fit a {verb} step: {Wanted(category)}");
            return null;
        }

        return result with { Position = position };
    }

    public static bool Fits(Expectation expectation, StepCategory category) => category switch
    {
        StepCategory.Operation => expectation is ResultExpectation,
        StepCategory.Access => expectation is TranslatedExpectation or ViolationExpectation or MisconfigExpectation or PageFaultExpectation,
        StepCategory.Entry => expectation is EntryExpectation,
        _ => expectation is VmEntryExpectation,
    };

    private static string Wanted(StepCategory category) => category switch
    {
        StepCategory.Operation => "it expects ok or an error name (Unaligned, Duplicated, ...)",
        StepCategory.Access => "an access expects ok hpa=..., violation, misconfig or page-fault",
        StepCategory.Entry => "it expects entry a=0/1 d=0/1 [value=V]",
        _ => "it expects vmentry ok or vmentry fail",
    };

    private static EntryExpectation? Entry(StepFields f)
    {
        bool? a = f.Require<bool>("a", CaseSyntax.TryBool);
        bool? d = f.Require<bool>("d", CaseSyntax.TryBool);
        ulong? value = f.Get<ulong>("value", CaseSyntax.TryNumber);
        return a is { } accessed && d is { } dirty ? new EntryExpectation(accessed, dirty, value) : null;
    }

    private static VmEntryExpectation? VmEntry(ErrorSink errors, string text, int line, List<(int Start, int Length)> tokens, ref bool failed)
    {
        if (tokens.Count < 2)
        {
            errors.Report(line, tokens[0].Start + 1, "=> vmentry needs ok or fail after it");
            failed = true;
            return null;
        }

        ReadOnlySpan<char> verdict = text.AsSpan(tokens[1].Start, tokens[1].Length);
        bool? ok = verdict.SequenceEqual("ok") ? true : verdict.SequenceEqual("fail") ? false : null;
        if (ok is null)
        {
            errors.Report(line, tokens[1].Start + 1, $"=> vmentry expects ok or fail, found {CaseSyntax.Quote(verdict)}");
            failed = true;
        }

        for (int i = 2; i < tokens.Count; i++)
        {
            errors.Report(line, tokens[i].Start + 1, $"=> vmentry takes nothing after ok/fail, found {CaseSyntax.Quote(text.AsSpan(tokens[i].Start, tokens[i].Length))}");
            failed = true;
        }

        return ok is { } v ? new VmEntryExpectation(v) : null;
    }

    /// <summary>A #PF error code is 32 bits.</summary>
    private static bool TryErrorCode(ReadOnlySpan<char> s, out uint value, out string error)
    {
        value = 0;
        if (!CaseSyntax.TryNumber(s, out ulong n, out error))
        {
            return false;
        }

        if (n > uint.MaxValue)
        {
            error = $"a page-fault error code is 32 bits, found {CaseSyntax.Hex(n)}";
            return false;
        }

        value = (uint)n;
        return true;
    }

    private static Gpa? ToGpa(ulong? value) => value is { } v ? new Gpa(v) : null;

    private static Gva? ToGva(ulong? value) => value is { } v ? new Gva(v) : null;
}
