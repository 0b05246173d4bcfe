/** English and Simplified Chinese: chosen from the browser, switchable, remembered. */
import i18n from 'i18next';
import LanguageDetector from 'i18next-browser-languagedetector';
import { initReactI18next, useTranslation } from 'react-i18next';
import { useMemo } from 'react';
import { en } from './locales/en';
import { zhCN } from './locales/zh-CN';

export const LANGUAGES = [
  { code: 'en', name: 'English' },
  { code: 'zh-CN', name: '简体中文' },
] as const;

declare module 'i18next' {
  interface CustomTypeOptions {
    defaultNS: 'translation';
    resources: { translation: typeof en };
  }
}

void i18n
  .use(LanguageDetector)
  .use(initReactI18next)
  .init({
    resources: { en: { translation: en }, 'zh-CN': { translation: zhCN } },
    supportedLngs: ['en', 'zh-CN'],
    // zh, zh-TW, zh-HK … match zh-CN by their prefix: they read Simplified Chinese rather than English.
    fallbackLng: 'en',
    load: 'currentOnly',
    detection: { order: ['localStorage', 'navigator'], lookupLocalStorage: 'tavily-pool-language', caches: ['localStorage'] },
    interpolation: { escapeValue: false },
    returnNull: false,
  });

document.documentElement.lang = i18n.resolvedLanguage ?? 'en';
i18n.on('languageChanged', (lng) => {
  document.documentElement.lang = lng;
});

export default i18n;

const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** Numbers, dates and times in one format, in the browser's time zone, in the chosen language. */
export function useFormat() {
  const { i18n: i } = useTranslation();
  const lang = i.resolvedLanguage ?? 'en';
  return useMemo(() => {
    const num = new Intl.NumberFormat(lang);
    const dateTime = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
    const date = new Intl.DateTimeFormat(lang, { dateStyle: 'medium' });
    // The request log's days are UTC days: shown as such, whatever the browser's zone.
    const utcDay = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeZone: 'UTC' });
    const utcDayShort = new Intl.DateTimeFormat(lang, { month: 'numeric', day: 'numeric', timeZone: 'UTC' });
    const hour = new Intl.DateTimeFormat(lang, { hour: 'numeric' });
    const at = (d: string | Date) => (typeof d === 'string' ? new Date(d) : d);
    return {
      lang,
      timeZone,
      num: (n: number) => num.format(n),
      dateTime: (d: string | Date) => dateTime.format(at(d)),
      date: (d: string | Date) => date.format(at(d)),
      utcDay: (d: string | Date) => utcDay.format(at(d)),
      utcDayShort: (d: string | Date) => utcDayShort.format(at(d)),
      hour: (d: string | Date) => hour.format(at(d)),
    };
  }, [lang]);
}
